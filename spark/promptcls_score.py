"""`promptcls score` for spark-submit, which runs a file rather than a module (promptcls/cli.py itself cannot be
that file: run as a script, its folder's select.py would shadow Python's `select`). Arguments are score's:

    spark-submit --master yarn spark/promptcls_score.py --engine spark --input hdfs:///logs/ --output hdfs:///scored/
"""

import sys

from promptcls.cli import main

if __name__ == "__main__":
    sys.exit(main(["score", *sys.argv[1:]]))
