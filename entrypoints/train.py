"""MLproject entry point `train`: any registered family by name (`-P family=...`). See `--help`."""

from promptcls.train import main_any

if __name__ == "__main__":
    main_any()
