"""`promptcls serve`: a FastAPI + uvicorn scoring server for the champion (see README "Serving")."""
