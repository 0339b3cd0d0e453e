"""absl entry points, one per job: `python -m pipelines.<job>`.

Python imports this package before the job's module, so this is where a job run from the command line quiets
TensorFlow's and Beam's logging (`recsys.console`, `--verbosity=1` brings it back): before anything imports them.
"""
import sys

# While `python -m pipelines.<job>` imports the parent package, sys.argv[0] is "-m" (Python's documented
# behaviour); a program or test that merely imports a job module keeps its own logging.
if sys.argv[:1] == ["-m"]:
    from recsys import console

    console.configure(sys.argv)
