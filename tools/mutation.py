"""Mutation testing of the modules where a silent bug corrupts results (developer command, not part of CI).

    pip install -e .[dev]
    python tools/mutation.py                          # every module of MODULES
    python tools/mutation.py --module zoo/metrics/frechet.py --module zoo/leaderboard.py
    python tools/mutation.py --list                   # the module -> tests map (and functions, where restricted)
    python tools/mutation.py --module zoo/models/videogpt/gpt.py --functions categorical Transformer.step

Each module is mutated by mutmut (3.x) in a scratch copy of the repository (the worktree is never modified) and only
its targeted tests run against each mutant, so a module takes minutes, not hours. For large modules, FUNCTIONS names
the functions whose mutants run (mutmut's mutant-name filter); the row then counts those mutants only. Prints one
CSV row per module: `module,killed,survived,no_tests,other,total,score_percent` (score = killed / total; no_tests:
mutants in functions none of the module's tests call; other: timeouts, suspicious results, segfaults) and, with
--survivors, each surviving mutant's diff.
"""

from __future__ import annotations

import argparse
import fnmatch
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
    "zoo/leaderboard.py": [
        "tests/test_leaderboard.py::test_partial_last_row_is_set_aside_and_appends_continue",
        "tests/test_leaderboard.py::test_non_numeric_values_are_one_line_errors_naming_the_line",
        "tests/test_leaderboard.py::test_rows_that_cannot_be_appended_are_written_beside",
        "tests/test_leaderboard.py::test_malformed_file_is_reported_and_untouched",
        "tests/test_leaderboard.py::test_only_rows_with_table_verified_weights_are_comparable",
        "tests/test_leaderboard.py::test_render_marks_comparability_and_paper_numbers",
        "tests/test_leaderboard_lock.py::test_lock_is_held_while_the_rows_are_formatted",
        "tests/test_leaderboard_mutants.py",
        # the rendering side: comparability, ranking, the protocol-and-resolution unit, escaping, --out
        "tests/test_leaderboard_boundaries.py", "tests/test_leaderboard_rows.py", "tests/test_leaderboard_render.py",
        *(f"tests/test_leaderboard_safety.py::{name}" for name in (
            "test_html_page_embeds_its_samples_and_shows_them_wherever_it_is_written",
            "test_html_page_never_reads_files_outside_its_samples_folder", "test_html_escapes_every_field",
            "test_markdown_escapes_html_links_and_cell_breaks",
            "test_tables_say_which_values_are_better_and_rank_by_it",
            "test_a_field_over_the_csv_limit_is_refused_on_write_and_one_line_on_read",
            "test_out_never_overwrites_silently")),
    ],
    "zoo/datasets/transforms.py": ["tests/datasets/test_decode.py", "tests/datasets/test_transforms_mutants.py"],
    "zoo/models/ema.py": ["tests/test_mutation_kills.py::test_ema_after_k_updates_is_the_closed_form_average",
                          "tests/test_mutation_kills.py::test_ema_decay_range_and_frozen_copy"],
    "zoo/models/base.py": ["tests/models/test_checkpoint_mutants.py"],
    # how the generated side is shared among DDP ranks (the gloo test of test_evaluate.py is invisible to mutmut)
    "zoo/evaluation/sources.py": ["tests/test_eval_partition.py"],
    **{f"zoo/metrics/{name}.py": [
        "tests/metrics/test_frechet.py", "tests/metrics/test_shapes_metrics.py",
        "tests/test_mutation_kills.py::test_build_metric_uses_the_presets_covariance",
        "tests/metrics/test_metric_mutants.py",
    ] for name in ("presets", "fvd", "feature_metric", "inception_score", "prdc", "stats")},
    "zoo/training.py": ["tests/test_seeding_mutants.py"],
    "zoo/datasets/datamodule.py": ["tests/test_seeding_mutants.py"],
    "zoo/frame_sampling.py": ["tests/models/test_stylegan_v.py::test_sparse_frame_times_follow_the_official_palette",
                              "tests/test_seeding_mutants.py"],
    # the model-level causality sweep (tests/models/test_pixel_causality.py) takes ~45 s; its PixelCNN cases (~4 s)
    "zoo/models/layers/masked_conv.py": [
        "tests/models/test_pixel_causality.py::test_receptive_field_is_exactly_the_papers[pixelcnn-convlstm]",
        "tests/models/test_pixel_causality.py::test_mask_b_in_the_first_layer_is_caught[pixelcnn]",
        "tests/models/test_pixel_causality.py::test_uneven_colour_groups_stay_causal[pixelcnn]",
        "tests/models/test_attention_mutants.py",
    ],
    "zoo/models/layers/axial_attention.py": ["tests/models/test_attention_mutants.py"],
    "zoo/models/videogpt/gpt.py": ["tests/models/test_attention_mutants.py"],
    "zoo/models/video_diffusion/schedule.py": [
        *(f"tests/models/test_video_diffusion.py::{name}" for name in (
            "test_schedule_identities", "test_parameterizations_round_trip",
            "test_ancestral_step_with_the_true_x_keeps_the_forward_marginal",
            "test_ddim_step_with_the_true_x_follows_the_noise", "test_ddim_sampling_is_deterministic")),
        "tests/models/test_diffusion_mutants.py",
    ],
    "zoo/models/video_diffusion/module.py": [
        "tests/test_mutation_kills.py::test_diffusion_training_step_masks_image_frames_in_temporal_attention",
        "tests/models/test_video_diffusion.py::test_classifier_free_guidance_uses_the_labels",
        "tests/models/test_diffusion_mutants.py",
    ],
    "zoo/metrics/preprocess.py": ["tests/metrics/test_detector_mutants.py"],
    # the reference-vector parity tests of test_i3d.py run full I3D forwards (seconds each): left to the default suite
    "zoo/metrics/detectors/i3d.py": [
        "tests/metrics/test_i3d.py::test_tf_same_padding_puts_the_extra_pixel_at_the_end",
        "tests/metrics/test_i3d.py::test_split_padding_is_symmetric_native_plus_the_end_remainder",
        "tests/metrics/test_detector_mutants.py",
    ],
}
# Modules too large to mutate whole in minutes: only these functions' mutants run (mutmut's own mutant-name filter;
# `name` is a module-level function, `Class.name` a method, `*.name` a method of any class). The score then counts
# those functions' mutants only; docs/testing.md says which functions each such row covers.
FUNCTIONS: dict[str, list[str]] = {
    # the whole module but the argparse wiring: the write path, its locking and reader, and the rendering
    # (comparability, ranking, escaping, embedded samples, --out)
    "zoo/leaderboard.py": ["RowsSetAside.__init__", "make_row", "scored_resolution", "_verified_column",
                           "detector_trust", "_format", "_check_field_sizes", "_check_header", "_set_aside_partial",
                           "append_rows", "append_or_set_aside", "_check_numbers", "read_rows", "paper_references",
                           "row_resolution", "protocol_label", "comparable", "better_text", "rank_key", "finite",
                           "image_data_uri", "_secondary", "_value_text", "_tables", "_md_text", "_markdown", "_html",
                           "_samples_link", "render", "write_text_atomic", "_check_out", "_run_leaderboard"],
    # the generated side's batches, rank by rank, and their noise seeds
    "zoo/evaluation/sources.py": ["_batches", "fake_videos"],
    # checkpoint writing and loading (not the sampling helpers of the model base class)
    "zoo/models/base.py": ["read_checkpoint", "_unreadable_message", "checkpoint_meta", "state_dict_mismatch",
                           "check_state_dict", "model_from_meta", "load_model",
                           "VideoGenerativeModel.on_save_checkpoint", "VideoGenerativeModel.on_load_checkpoint"],
    # per-step seeding and its step counting / checkpoint cadence
    "zoo/training.py": ["step_seed", "TrainingProgress.__init__", "TrainingProgress.on_train_batch_start",
                        "TrainingProgress.on_train_batch_end", "TrainingProgress.save"],
    # the rank-split, resumable training sampler
    "zoo/datasets/datamodule.py": ["ResumableSampler.__init__", "ResumableSampler.__len__",
                                   "ResumableSampler.__iter__"],
    # causal self-attention, cross-attention, the start token and the key/value cache (not the model's training code)
    "zoo/models/videogpt/gpt.py": ["Attention.__init__", "Attention.keys_values", "Attention.forward",
                                   "KVCache.__init__", "Transformer.forward", "Transformer.new_cache",
                                   "Transformer.step", "categorical", "decode_codes"],
    # the training loss and its wiring (clip, labels, network call, guidance), not the samplers' extension code
    "zoo/models/video_diffusion/module.py": ["VideoDiffusion.network_output", "VideoDiffusion.predict_clean",
                                             "VideoDiffusion.training_step", "VideoDiffusion.joint_clip",
                                             "VideoDiffusion.training_labels", "VideoDiffusion.diffusion_loss"],
    # TF "SAME" padding and pooling, reference and fast paths of one unit (not the network assembly)
    "zoo/metrics/detectors/i3d.py": ["same_padding", "split_padding", "MaxPool3dSame.forward", "MaxPool3dSame.fast",
                                     "Unit3D.__init__", "Unit3D.forward", "Unit3D.folded", "Unit3D.fast"],
}
# Fork workers from a server free of pytest for these (slower): with plain fork, mutmut's os.wait() reaps the
# processes the in-process stats run left behind (tests that start writer processes) and crashes. The leaderboard's
# process-based tests (4 spawned writers; a locked-out child) are left out of its mapping (they stay in the default
# suite; its deterministic in-process lock probe is mapped), so it runs in plain fork mode now.
FORKSERVER: set[str] = set()
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


def mutant_patterns(module: str, functions: list[str]) -> list[str]:
    """mutmut mutant-name globs for `functions` of `module` (mutmut names a mutant of function f in package.module
    `package.module.x_f__mutmut_N`, of method C.f `package.module.xǁCǁf__mutmut_N`)."""
    dotted = module.removesuffix(".py").replace("/", ".")
    patterns = []
    for name in functions:
        cls, _, func = name.rpartition(".")
        patterns.append(f"{dotted}.xǁ{cls}ǁ{func}__mutmut_*" if cls else f"{dotted}.x_{func}__mutmut_*")
    return patterns


def _status_counts(work: Path, module: str, patterns: list[str]) -> dict:
    """Counts of the mutants matching `patterns`, read from mutmut's per-file results (the same exit codes that
    `mutmut results` reports)."""
    from mutmut.stats import status_by_exit_code

    meta = json.loads((work / "mutants" / (module + ".meta")).read_text())
    counts: dict[str, int] = {}
    for key, code in meta["exit_code_by_key"].items():
        if any(fnmatch.fnmatchcase(key, p) for p in patterns):
            status = status_by_exit_code[code]
            counts[status] = counts.get(status, 0) + 1
    return counts


def run_module(module: str, tests: list[str], root: Path, children: int, survivors: bool,
               functions: list[str] | None = None) -> dict:
    work = scratch_copy(module, tests, root)
    patterns = mutant_patterns(module, functions) if functions else []
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(work / "mutants")}
    env.setdefault("ZOO_SHARED", str(REPO.parent / "shared"))
    mutmut = [sys.executable, "-m", "mutmut"]
    log = work / "mutmut.log"
    with open(log, "w") as out:
        rc = subprocess.run([*mutmut, "run", "--max-children", str(children), *patterns], cwd=work, env=env, stdout=out,
                            stderr=subprocess.STDOUT).returncode
    if rc != 0 and "could not find any test case for any mutant" in log.read_text():
        # mutmut stops before running anything when the selected tests reach none of the mutated functions: every
        # mutant is then a "no test" one
        meta = json.loads((work / "mutants" / (module + ".meta")).read_text())
        names = [k for k in meta["exit_code_by_key"]
                 if not patterns or any(fnmatch.fnmatchcase(k, p) for p in patterns)]
        return {"module": module, "killed": 0, "survived": 0, "no_tests": len(names), "other": 0, "total": len(names),
                "score_percent": 0.0}
    if rc != 0:
        raise SystemExit(f"mutmut failed on {module} (exit {rc}); see {log}")
    if patterns:
        counts = _status_counts(work, module, patterns)
        killed, survived, no_tests = counts.get("killed", 0), counts.get("survived", 0), counts.get("no tests", 0)
        total = sum(counts.values()) - counts.get("skipped", 0)
    else:
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
            if name and "survived" in line and (not patterns or any(fnmatch.fnmatchcase(name, p) for p in patterns)):
                shown = subprocess.run([*mutmut, "show", name], cwd=work, env=env, capture_output=True, text=True)
                print(f"# survivor {name}\n{shown.stdout}", file=sys.stderr)
    return row


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--module", action="append", help="a key of MODULES (repeatable; default: all)")
    parser.add_argument("--list", action="store_true", help="print the module -> tests map and exit")
    parser.add_argument("--survivors", action="store_true", help="print each surviving mutant's diff on stderr")
    parser.add_argument("--tests", nargs="+", help="run these tests instead of the module's mapped ones")
    parser.add_argument("--functions", nargs="+", help="mutate only these functions (default: FUNCTIONS[module], "
                        "else all); `f`, `Class.f`, `*.f` for a method of any class; `all` for the whole module")
    parser.add_argument("--children", type=int, default=1, help="parallel mutants (default 1)")
    parser.add_argument("--workdir", type=Path, default=None, help="scratch folder (default: a temporary one, kept)")
    args = parser.parse_args(argv)
    if args.list:
        for module, tests in MODULES.items():
            only = f" [functions: {' '.join(FUNCTIONS[module])}]" if module in FUNCTIONS else ""
            print(f"{module}: {' '.join(tests)}{only}")
        return
    modules = args.module or list(MODULES)
    unknown = [m for m in modules if m not in MODULES]
    if unknown:
        raise SystemExit(f"unknown module(s) {unknown}; known: {', '.join(MODULES)} (add it to MODULES with its tests)")
    root = args.workdir or Path(tempfile.mkdtemp(prefix="zoo-mutation-"))
    print(",".join(COLUMNS), flush=True)
    for module in modules:
        tests = args.tests or [t for t in MODULES[module] if (REPO / t.split("::")[0]).exists()]
        functions = args.functions or FUNCTIONS.get(module)
        functions = None if functions == ["all"] else functions
        row = run_module(module, tests, root, args.children, args.survivors, functions)
        print(",".join(str(row[k]) for k in COLUMNS), flush=True)
    print(f"# scratch copies (mutmut results / show / browse work there): {root}", file=sys.stderr)


if __name__ == "__main__":
    main()
