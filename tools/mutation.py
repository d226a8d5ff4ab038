"""Mutation testing of the modules where a silent bug corrupts results (developer command, not part of CI).

    pip install -e .[dev]
    python tools/mutation.py                          # every module of MODULES
    python tools/mutation.py --module zoo/metrics/frechet.py --module zoo/leaderboard.py
    python tools/mutation.py --list                   # the module -> tests map

Each module is mutated by mutmut (3.x) in a scratch copy of the repository (the worktree is never modified) and only
its targeted tests run against each mutant, so a module takes minutes, not hours. Prints one CSV row per module:
`module,killed,survived,no_tests,other,total,score_percent` (score = killed / total; no_tests: mutants in functions
none of the module's tests call; other: timeouts, suspicious results, segfaults) and, with --survivors, each
surviving mutant's diff.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

# module -> the test files (or node ids) that exercise it: small enough for a fork per mutant
MODULES: dict[str, list[str]] = {
    "zoo/metrics/frechet.py": [
        "tests/metrics/test_frechet.py", "tests/metrics/test_frechet_mutants.py",
        "tests/test_mutation_kills.py::test_build_metric_uses_the_presets_covariance",
    ],
    "zoo/datasets/cliplist.py": ["tests/datasets/test_cliplist.py", "tests/datasets/test_cliplist_mutants.py"],
    "zoo/leaderboard.py": ["tests/test_leaderboard.py", "tests/test_leaderboard_lock.py"],
    "zoo/datasets/transforms.py": ["tests/datasets/test_decode.py", "tests/datasets/test_transforms_mutants.py"],
    "zoo/models/ema.py": ["tests/test_mutation_kills.py::test_ema_after_k_updates_is_the_closed_form_average",
                          "tests/test_mutation_kills.py::test_ema_decay_range_and_frozen_copy"],
}
# Fork workers from a server free of pytest for these (slower): with plain fork, mutmut's os.wait() reaps the
# processes the in-process stats run left behind (the leaderboard tests' writer processes) and crashes.
FORKSERVER = {"zoo/leaderboard.py"}
COLUMNS = ("module", "killed", "survived", "no_tests", "other", "total", "score_percent")
COPY = ("zoo", "tests", "experiments", "setup.cfg", "README.md")


def scratch_copy(module: str, tests: list[str], root: Path) -> Path:
    """A copy of the repository under `root` with a pyproject.toml that points mutmut at `module` and `tests`."""
    work = root / module.replace("/", "_").removesuffix(".py")
    if work.exists():
        shutil.rmtree(work)
    work.mkdir(parents=True)
    for name in COPY:
        src = REPO / name
        if src.is_dir():
            shutil.copytree(src, work / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        elif src.exists():
            shutil.copy2(src, work / name)
    selection = json.dumps(tests)
    (work / "pyproject.toml").write_text(
        "[tool.mutmut]\n"
        'source_paths = ["zoo"]\n'
        f'only_mutate = ["{module}"]\n'
        'also_copy = ["experiments", "README.md"]\n'
        f"pytest_add_cli_args_test_selection = {selection}\n"
        'pytest_add_cli_args = ["-p", "no:cacheprovider", "-x", "-q"]\n'
        f'process_isolation = "{"forkserver" if module in FORKSERVER else "fork"}"\n'
    )
    # mutmut runs pytest in-process from work/mutants, which PYTHONPATH names: it must exist before Python starts, or
    # the import system caches it as missing and `tests` / `zoo` cannot be imported
    (work / "mutants").mkdir()
    return work


def run_module(module: str, tests: list[str], root: Path, children: int, survivors: bool) -> dict:
    work = scratch_copy(module, tests, root)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(work / "mutants")}
    env.setdefault("ZOO_SHARED", str(REPO.parent / "shared"))
    mutmut = [sys.executable, "-m", "mutmut"]
    log = work / "mutmut.log"
    with open(log, "w") as out:
        rc = subprocess.run([*mutmut, "run", "--max-children", str(children)], cwd=work, env=env, stdout=out,
                            stderr=subprocess.STDOUT).returncode
    if rc != 0:
        raise SystemExit(f"mutmut failed on {module} (exit {rc}); see {log}")
    subprocess.run([*mutmut, "export-cicd-stats"], cwd=work, env=env, check=True, capture_output=True)
    stats = json.loads((work / "mutants" / "mutmut-cicd-stats.json").read_text())
    killed, survived = int(stats.get("killed", 0)), int(stats.get("survived", 0))
    total = int(stats.get("total", 0)) - int(stats.get("skipped", 0))
    no_tests = int(stats.get("no_tests", 0))
    row = {"module": module, "killed": killed, "survived": survived, "no_tests": no_tests,
           "other": total - killed - survived - no_tests, "total": total,
           "score_percent": round(100.0 * killed / total, 1) if total else 0.0}
    if survivors:
        listing = subprocess.run([*mutmut, "results"], cwd=work, env=env, capture_output=True, text=True).stdout
        for line in listing.splitlines():
            name = line.split(":")[0].strip()
            if name and "survived" in line:
                shown = subprocess.run([*mutmut, "show", name], cwd=work, env=env, capture_output=True, text=True)
                print(f"# survivor {name}\n{shown.stdout}", file=sys.stderr)
    return row


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--module", action="append", help="a key of MODULES (repeatable; default: all)")
    parser.add_argument("--list", action="store_true", help="print the module -> tests map and exit")
    parser.add_argument("--survivors", action="store_true", help="print each surviving mutant's diff on stderr")
    parser.add_argument("--tests", nargs="+", help="run these tests instead of the module's mapped ones")
    parser.add_argument("--children", type=int, default=1, help="parallel mutants (default 1)")
    parser.add_argument("--workdir", type=Path, default=None, help="scratch folder (default: a temporary one, kept)")
    args = parser.parse_args(argv)
    if args.list:
        for module, tests in MODULES.items():
            print(f"{module}: {' '.join(tests)}")
        return
    modules = args.module or list(MODULES)
    unknown = [m for m in modules if m not in MODULES]
    if unknown:
        raise SystemExit(f"unknown module(s) {unknown}; known: {', '.join(MODULES)} (add it to MODULES with its tests)")
    root = args.workdir or Path(tempfile.mkdtemp(prefix="zoo-mutation-"))
    print(",".join(COLUMNS), flush=True)
    for module in modules:
        tests = args.tests or [t for t in MODULES[module] if (REPO / t.split("::")[0]).exists()]
        row = run_module(module, tests, root, args.children, args.survivors)
        print(",".join(str(row[k]) for k in COLUMNS), flush=True)
    print(f"# scratch copies (mutmut results / show / browse work there): {root}", file=sys.stderr)


if __name__ == "__main__":
    main()
