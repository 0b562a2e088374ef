"""MLproject entry point `behaviour`: behavioural tests of a logged model (pass rates, evasion flip rates, cases CSV)."""

from promptcls.behaviour import BehaviourArgs, run
from promptcls.config import parse_args, run_cli

if __name__ == "__main__":
    args = parse_args(BehaviourArgs)
    run_cli(lambda: run(args))
