"""Issue 20: every flag either changes the output as documented or is refused in one line
naming it; one name per concept in every format. In-process through ``convzoo.cli.main``,
and the installed command in a subprocess the way a user drives it (a few in the fast
tier, the rest ``slow``)."""

from __future__ import annotations

import csv
import io
import json
import re
import subprocess
from pathlib import Path

import pytest

import convzoo
from convzoo.catalogue import categories, config_paths, shipped
from convzoo.cli import main
from tests.helpers import cli

ROOT = Path(__file__).resolve().parents[1]
SMALL = "encoder_decoder"  # a packaged config: 3x64x64, two levels of modules
TOKENS = "tests/data/token_model.py:TokenModel"


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def refused(done: subprocess.CompletedProcess[str], *words: str) -> str:
    """The one stderr line of a refusal (exit 2, nothing on stdout) that names ``words``."""
    assert done.returncode == 2 and done.stdout == "", done.stdout + done.stderr
    lines = done.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("convzoo: error: "), done.stderr
    assert all(word in lines[0] for word in words), lines[0]
    return lines[0]


def table_names(text: str) -> list[str]:
    """The first column of a table (plain or markdown) between its header and ``total``."""
    lines = text.split("\n\n")[0].splitlines()[2:]
    cells = [
        line.strip("|").split("|")[0].strip() if "|" in line else line.split()[0] for line in lines
    ]
    return [c for c in cells if c != "total"]


def layer_names(text: str, fmt: str) -> list[str]:
    if fmt == "json":
        return [row["name"] for row in json.loads(text)["layers"]]
    if fmt == "csv":
        return [row["name"] for row in csv.DictReader(io.StringIO(text))][:-1]  # (total)
    return table_names(text)


# -- report: --top, --sort and --depth in every format ------------------------------------


def test_top_and_sort_pick_the_same_rows_in_every_format(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, out, _ = run(capsys, "report", SMALL, "--no-fields", "--format", "json")
    layers = json.loads(out)["layers"]
    heaviest = sorted((r for r in layers if r["depth"] > 0), key=lambda r: -r["params"])
    expected = [r["name"] for r in heaviest[:3]]
    for fmt in ("table", "markdown", "json", "csv"):
        argv = ["report", SMALL, "--no-fields", "--top", "3", "--sort", "params", "--format", fmt]
        code, out, _ = run(capsys, *argv)
        assert code == 0 and layer_names(out, fmt) == expected, fmt
    data = json.loads(run(capsys, *argv[:-1], "json")[1])
    assert data["totals"]["params"] == layers[0]["params"]  # totals stay the whole model's
    assert f"layers: top 3 of {len(layers) - 1} layers by params" in data["notes"][-1]
    rows = list(csv.DictReader(io.StringIO(run(capsys, *argv[:-1], "csv")[1])))
    assert rows[-1]["name"] == "(total)" and int(rows[-1]["params"]) == layers[0]["params"]


def test_depth_applies_to_every_format(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "report", SMALL, "--no-fields", "--format", "json")
    layers = json.loads(out)["layers"]
    shallow = [r for r in layers if r["depth"] <= 1]
    assert 1 < len(shallow) < len(layers)  # the flag has something to cut
    for fmt in ("table", "markdown", "json", "csv"):
        code, out, _ = run(capsys, "report", SMALL, "--no-fields", "--depth", "1", "--format", fmt)
        assert code == 0 and len(layer_names(out, fmt)) == len(shallow), fmt
    code, out, _ = run(capsys, "report", SMALL, "--no-fields", "--depth", "1", "--format", "csv")
    assert [r["name"] for r in csv.DictReader(io.StringIO(out))][:-1] == [
        r["name"] or SMALL for r in shallow
    ]


def test_csv_names_the_model_row_as_the_table_does(capsys: pytest.CaptureFixture[str]) -> None:
    _, table, _ = run(capsys, "report", SMALL, "--no-fields")
    _, out, _ = run(capsys, "report", SMALL, "--no-fields", "--format", "csv")
    first = next(csv.DictReader(io.StringIO(out)))
    assert first["name"] == table_names(table)[0] == SMALL and first["depth"] == "0"


# -- compare: --designs, one name for a design ----------------------------------------------

SMALL_COMPARE = ["--in-channels", "4", "--out-channels", "4", "--size", "8"]


def test_designs_pick_the_upsampling_designs(capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["compare", "--upsample", "2", *SMALL_COMPARE, "--format", "json"]
    code, out, _ = run(capsys, *argv)
    assert code == 0 and len(json.loads(out)) == 3
    code, out, _ = run(capsys, *argv, "--designs", "sub_pixel")
    assert code == 0 and [r["design"] for r in json.loads(out)] == ["resize_conv", "sub_pixel"]
    code, out, err = run(capsys, *argv, "--designs", "sub_pixle")
    assert code == 2 and "unknown design 'sub_pixle'; did you mean 'sub_pixel'?" in err


def test_a_design_is_a_design_in_every_format(capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["compare", *SMALL_COMPARE, "--designs", "conv,factorized"]
    table = run(capsys, *argv)[1]
    records = json.loads(run(capsys, *argv, "--format", "json")[1])
    rows = list(csv.DictReader(io.StringIO(run(capsys, *argv, "--format", "csv")[1])))
    assert table.split()[0] == "design" and list(records[0])[0] == "design"
    assert list(rows[0])[0] == "design" and not any("variant" in key for key in records[0])
    assert table_names(table) == [r["design"] for r in records] == ["conv", "factorized"]


@pytest.mark.parametrize(
    ("argv", "words"),
    [
        (["--designs", ""], ("--designs", "got ''")),
        (["--designs", "conv,,factorized"], ("--designs", "'conv,,factorized'")),
        (["--upsample", "2", "--padding", "valid"], ("--padding does not apply",)),
        (["--force"], ("--force", "--plot")),
    ],
)
def test_compare_refuses_flags_that_would_do_nothing(
    capsys: pytest.CaptureFixture[str], argv: list[str], words: tuple[str, ...]
) -> None:
    code, out, err = run(capsys, "compare", *SMALL_COMPARE, *argv)
    assert code == 2 and out == "" and len(err.splitlines()) == 1
    assert all(word in err for word in words), err


def test_a_flag_that_does_not_apply_is_singular(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "compare", "bottleneck_vs_two_3x3", "--kernel", "9")
    assert code == 2 and "--kernel does not apply (drop it, or the config)" in err


# -- list: categories and configs -----------------------------------------------------------


def test_the_categories_accepted_are_those_shown(capsys: pytest.CaptureFixture[str]) -> None:
    shown = {row.category for row in shipped().entries()}
    assert set(categories()) == shown and "attention" in shown
    for category in categories():
        code, out, _ = run(capsys, "list", "--category", category, "--format", "markdown")
        cells = [line.split("|")[2].strip() for line in out.splitlines()[2:]]
        assert code == 0 and cells and set(cells) == {category}, category


def test_list_configs_shows_every_packaged_config(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "list", "--configs", "--format", "markdown")
    names = [line.split("|")[1].strip() for line in out.splitlines()[2:]]
    assert code == 0 and names == [*config_paths(), *config_paths("compare")]
    assert "| resnet18 " in out and "| 3x224x224 " in out and "torchvision's resnet18()" in out
    code, out, _ = run(capsys, "list", "res*", "--configs", "--format", "markdown")
    assert code == 0 and table_names(out) == ["resnet18", "resnet50"]
    code, _, err = run(capsys, "list", "--configs", "--category", "conv")
    assert code == 2 and "--category" in err and "--configs" in err


def test_a_listed_compare_config_runs_by_name(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "compare", "bottleneck_vs_two_3x3", "--format", "json")
    assert code == 0 and [r["design"] for r in json.loads(out)] == ["two_3x3", "bottleneck"]


# -- the parser: unknown flags ----------------------------------------------------------------


def test_an_unknown_flag_names_its_command_and_the_closest(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, out, err = run(capsys, "report", "resnet18", "--fromat", "json")
    assert code == 2 and out == ""
    assert err == (
        "convzoo: error: convzoo report: unrecognized argument '--fromat'; did you mean --format?\n"
    )
    code, _, err = run(capsys, "compare", "--kernal=5", "--nothing-like-it")
    assert code == 2 and "convzoo compare: unrecognized arguments '--kernal', " in err
    assert "did you mean --kernel?" in err
    code, _, err = run(capsys, "list", "a", "b")
    assert code == 2 and "convzoo list: unrecognized argument 'b' (see convzoo list --help)" in err


# -- repeats, the namespace, typed inputs -----------------------------------------------------


def test_repeats_get_unambiguous_names() -> None:
    conv = {"type": "conv", "out_channels": 2, "kernel_size": 1}
    model = convzoo.build(
        {
            "input": [2, 4, 4],
            "layers": [{**conv, "name": "res2", "repeat": 11}, {**conv, "name": "res21"}],
        },
        meta=True,
    )  # res2 repeated eleven times once named res21 too (and res211 for its eleventh)
    names = [name for name, _ in model.named_children()]
    assert names == [*(f"res2_{i}" for i in range(1, 12)), "res21"]
    assert all(model.get_submodule(name) is module for name, module in model.named_modules())


def test_the_package_namespace_is_the_public_api() -> None:
    assert dir(convzoo) == sorted(convzoo.__all__)
    assert not {"Any", "TYPE_CHECKING", "importlib"} & set(dir(convzoo))
    assert all(hasattr(convzoo, name) for name in convzoo.__all__)


def test_an_input_dtype_feeds_token_ids(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(
        capsys, "report", TOKENS, "--input", "16:int64", "--batch", "3", "--format", "json"
    )
    data = json.loads(out)
    assert code == 0 and data["input_shape"] == [[3, 16]]
    assert data["totals"]["macs"] == 3 * 32 * 2  # the head only: B·dim·classes
    code, _, err = run(capsys, "report", TOKENS, "--input", "16")  # float ids: torch refuses
    assert code == 2 and "indices" in err
    code, _, err = run(capsys, "report", TOKENS, "--input", "16:float16")
    assert code == 2 and "must be one of int64, int32" in err and "--dtype" in err


# -- the installed command ------------------------------------------------------------------


@pytest.mark.slow  # a subprocess: the fast tier keeps one per command (test_contract)
def test_cli_top_and_sort_apply_to_json() -> None:
    done = cli("report", SMALL, "--no-fields", "--format", "json", "--top", "2", "--sort", "params")
    assert done.returncode == 0 and done.stderr == ""
    assert len(json.loads(done.stdout)["layers"]) == 2


def test_cli_an_unknown_flag_gets_a_suggestion() -> None:
    line = refused(cli("report", SMALL, "--fromat", "json"), "convzoo report:", "'--fromat'")
    assert line.endswith("did you mean --format?")


@pytest.mark.slow  # a subprocess: the fast tier keeps one per command (test_contract)
def test_cli_token_ids_for_an_embedding() -> None:
    done = cli("report", TOKENS, "--input", "16:int64", "--format", "csv")
    assert done.returncode == 0 and done.stderr == ""
    rows = list(csv.DictReader(io.StringIO(done.stdout)))
    assert [r["name"] for r in rows] == [TOKENS, "embed", "head", "(total)"]
    assert rows[0]["output_shape"] == "1x2" and int(rows[-1]["macs"]) == 32 * 2


@pytest.mark.slow
@pytest.mark.parametrize(
    ("argv", "words"),
    [
        (["compare", "--designs", ""], ("--designs",)),
        (["compare", "--upsample", "2", "--padding", "valid"], ("--padding does not apply",)),
        (["compare", "bottleneck_vs_two_3x3", "--kernel", "3"], ("--kernel does not apply",)),
        (["list", "--category", "nope"], ("--category", "attention")),
        (["rf", SMALL, "--lyaer", "encoder"], ("convzoo rf:", "did you mean --layer?")),
        (["report", TOKENS, "--input", "16:float16"], ("16:float16", "int64")),
    ],
)
def test_cli_refusals_are_one_line(argv: list[str], words: tuple[str, ...]) -> None:
    refused(cli(*argv), *words)


@pytest.mark.slow
def test_cli_list_and_compare_apply_their_flags() -> None:
    done = cli("list", "--category", "attention")
    assert done.returncode == 0 and "squeeze_excite" in done.stdout
    assert set(re.findall(r"^\S+\s+(\S+)", done.stdout, re.M)[2:]) == {"attention"}
    done = cli("list", "--configs")
    assert done.returncode == 0 and all(name in done.stdout for name in config_paths())
    done = cli("compare", "--upsample", "2", *SMALL_COMPARE, "--designs", "transposed")
    assert done.returncode == 0 and table_names(done.stdout) == ["resize_conv", "transposed"]
    done = cli("compare", *SMALL_COMPARE, "--designs", "conv", "--format", "json")
    assert done.returncode == 0 and json.loads(done.stdout)[0]["design"] == "conv"
    done = cli("report", SMALL, "--no-fields", "--format", "csv", "--depth", "0")
    assert done.returncode == 0 and done.stdout.splitlines()[1].startswith(f"{SMALL},")


def test_report_top_is_the_rows_the_command_shows() -> None:
    """``Report.top`` in Python picks the rows ``--top/--sort/--depth`` print."""
    import json

    from convzoo import views

    report = convzoo.analyze(ROOT / "configs" / "resnet18.yaml", receptive_fields=False)
    for n, sort, depth in ((2, "params", None), (3, "macs", 2), (None, "macs", 1)):
        shown = json.loads(views.layers_text(report, "json", sort, n, depth))["layers"]
        picked = report.top(n, sort, depth)
        assert [row.name for row in picked.layers] == [row["name"] for row in shown]
        assert picked.totals == report.totals
    assert (
        len(report.top(2).layers) == 2
        and report.top(2).layers[0].macs >= report.top(2).layers[1].macs
    )
