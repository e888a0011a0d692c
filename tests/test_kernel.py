"""The shipped kernel, axioms.json validation errors, and `lem kernel check`."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from lem.cli import main
from lem.errors import LemError
from lem.kernel import check_kernel, default_kernel_dir, json_path, load_kernel
from lem.seeds import default_seeds_path, load_seeds
from lem.store import sha256_file

AXIOM_IDS = ["sovereignty", "privacy", "transparency", "consent", "dignity"]
REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def kernel_dir(tmp_path) -> Path:
    """A writable copy of the shipped kernel."""
    return Path(shutil.copytree(default_kernel_dir(), tmp_path / "kernel"))


def edit_axioms(directory: Path, change) -> Path:
    path = directory / "axioms.json"
    data = json.loads(path.read_text())
    change(data)
    path.write_text(json.dumps(data, indent=2))
    return path


def test_shipped_kernel_has_five_axioms_and_the_right_length():
    kernel = load_kernel()
    assert kernel.axiom_ids == AXIOM_IDS
    assert [a.name for a in kernel.axioms] == [i.capitalize() for i in AXIOM_IDS]
    assert 8000 <= len(kernel.text) <= 11000
    for axiom in kernel.axioms:
        assert axiom.statement and axiom.guidance and axiom.examples
        assert f"**{kernel.axiom_ids.index(axiom.id) + 1}. {axiom.name}.**" in kernel.text
    # The prose covers the three things the kernel must teach, under its own headings.
    for heading in ("Reasoning from consequences", "When the axioms conflict", "Declining"):
        assert f"## {heading}" in kernel.text
    assert len(kernel.resolution) == 5


def test_hashes_are_file_hashes():
    kernel = load_kernel()
    assert kernel.text_sha256 == sha256_file(default_kernel_dir() / "kernel.md")
    assert kernel.axioms_sha256 == sha256_file(default_kernel_dir() / "axioms.json")


def test_top_level_symlinks_point_at_the_package_data():
    assert (REPO / "kernel").is_symlink() and (REPO / "seeds").is_symlink()
    assert not Path((REPO / "kernel").readlink()).is_absolute()
    assert (REPO / "kernel").resolve() == default_kernel_dir().resolve()
    assert (REPO / "seeds" / "train.jsonl").is_file()


def test_system_text_carries_every_axiom_example_hard_line_and_the_resolution_order():
    kernel = load_kernel()
    text = kernel.system_text()
    for axiom in kernel.axioms:
        assert f"{axiom.name}: {axiom.statement}" in text
        assert all(line in text for line in axiom.guidance)
    # The worked examples are what a teacher is shown (they exist to be shown).
    assert all(ex["prompt"] in text for a in kernel.axioms for ex in a.examples)
    assert all(ex["good_response_sketch"] in text for a in kernel.axioms for ex in a.examples)
    assert len(kernel.hard_lines) == 2 and all(line in text for line in kernel.hard_lines)
    assert text.index(kernel.resolution[0]) < text.index(kernel.resolution[-1])
    # The student never sees this text, so it must not invite answers that cite "axioms".
    assert "axiom" not in text.lower()
    without = kernel.system_text(examples=False)
    assert not any(ex["prompt"] in without for a in kernel.axioms for ex in a.examples)


def test_kernel_text_and_axioms_agree_on_the_points_they_share():
    kernel = load_kernel()
    text = " ".join(kernel.text.split())
    # Sovereignty: legality is a fact to tell, not the test, in both files.
    assert "not the test of whether to help" in text
    sovereignty = kernel.axioms[0]
    assert "not as the test of whether to help" in sovereignty.guidance[0]
    assert "lawful but" not in json_text(kernel) and "but lawful" not in json_text(kernel)
    # Honesty governs the assistant's own words; helping keep a harmless secret is weighed.
    assert "surprise party" in text and "surprise party" in kernel.resolution[0]
    # Both hard lines are in the prose as well as in the structured file.
    assert "sexual content involving minors" in text
    assert "kill many people at once" in text
    # An answer that leaves a detail out says so.
    assert "say that it is left out" in text


def json_text(kernel):
    return (kernel.directory / "axioms.json").read_text()


def test_check_kernel_counts(kernel_dir):
    report = check_kernel(kernel_dir)
    text = (kernel_dir / "kernel.md").read_text()
    assert report["axioms"] == 5 and report["axiom_ids"] == AXIOM_IDS
    assert report["kernel_md"]["characters"] == len(text)
    assert report["kernel_md"]["words"] == len(text.split())
    assert report["kernel_md"]["bytes"] == (kernel_dir / "kernel.md").stat().st_size
    assert report["axioms_json"]["sha256"] == sha256_file(kernel_dir / "axioms.json")
    assert report["examples"] == 10


def _drop_statement(d):
    del d["axioms"][2]["statement"]


def _guidance_string(d):
    d["axioms"][1]["guidance"] = "be nice"


def _duplicate_id(d):
    d["axioms"][3]["id"] = "privacy"


def _unknown_key(d):
    d["axioms"][0]["statment"] = "typo"


def _blank_name(d):
    d["axioms"][4]["name"] = "   "


def _bad_id(d):
    d["axioms"][0]["id"] = "Self Determination"


def _no_version(d):
    del d["version"]


def _example_without_sketch(d):
    del d["axioms"][0]["examples"][1]["good_response_sketch"]


def _no_axioms(d):
    d["axioms"] = []


@pytest.mark.parametrize(
    "change, expected",
    [
        (_drop_statement, "axioms[2]: 'statement' is a required property"),
        (_guidance_string, "axioms[1].guidance: expected array, got string"),
        (_duplicate_id, "axioms[3].id: duplicate id 'privacy' (also axioms[1].id)"),
        (_unknown_key, "axioms[0]: Additional properties are not allowed ('statment'"),
        (_blank_name, "axioms[4].name: must not be blank"),
        (_bad_id, "axioms[0].id: 'Self Determination' does not match"),
        (_no_version, "top level: 'version' is a required property"),
        (_example_without_sketch, "axioms[0].examples[1]: 'good_response_sketch' is a required"),
        (_no_axioms, "axioms: must not be empty"),
    ],
)
def test_schema_errors_are_one_line_naming_file_and_json_path(kernel_dir, change, expected):
    path = edit_axioms(kernel_dir, change)
    with pytest.raises(LemError) as err:
        load_kernel(kernel_dir)
    message = str(err.value)
    assert "\n" not in message
    assert message.startswith(f"{path}: {expected}")


def test_several_problems_are_counted_in_one_line(kernel_dir):
    def two(d):
        _drop_statement(d)
        _guidance_string(d)

    edit_axioms(kernel_dir, two)
    with pytest.raises(LemError, match=r"\(and 1 more problem\(s\)\)$") as err:
        load_kernel(kernel_dir)
    assert "\n" not in str(err.value)


def test_not_json_names_file_line_and_column(kernel_dir):
    path = kernel_dir / "axioms.json"
    path.write_text('{\n  "version": "1.0",\n  "name": "x"\n  "axioms": []\n}\n')
    with pytest.raises(LemError, match=r"axioms\.json:4:3: not valid JSON \(Expecting ','"):
        load_kernel(kernel_dir)


@pytest.mark.parametrize(
    "breakage, expected",
    [
        (lambda d: (d / "kernel.md").unlink(), r"kernel\.md: not found"),
        (lambda d: (d / "kernel.md").write_text(" \n\n"), r"kernel\.md: empty"),
        (lambda d: (d / "axioms.json").unlink(), r"axioms\.json: not found"),
        (lambda d: (d / "axioms.json").write_bytes(b'{"name": "\xff"}'), r"not UTF-8"),
        (lambda d: shutil.rmtree(d), r"not a kernel directory"),
    ],
)
def test_missing_or_empty_files(kernel_dir, breakage, expected):
    breakage(kernel_dir)
    with pytest.raises(LemError, match=expected):
        load_kernel(kernel_dir)


def test_json_path():
    assert json_path([]) == "top level"
    assert json_path(["axioms", 2, "examples", 0, "prompt"]) == "axioms[2].examples[0].prompt"


def test_cli_check_prints_counts_and_hashes():
    result = CliRunner().invoke(main, ["kernel", "check"])
    assert result.exit_code == 0, result.output
    kernel = load_kernel()
    assert kernel.text_sha256 in result.output and kernel.axioms_sha256 in result.output
    assert "5: sovereignty, privacy, transparency, consent, dignity" in result.output
    assert f"{len(kernel.text):,} characters" in result.output


def test_cli_check_with_seeds_and_json(kernel_dir):
    seeds = REPO / "seeds" / "eval.jsonl"
    args = ["kernel", "check", str(kernel_dir), "--seeds", str(seeds), "--json"]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert report["seeds"][0]["seeds"] == len(load_seeds(default_seeds_path("eval")))
    assert report["seeds"][0]["sha256"] == sha256_file(seeds)


def test_cli_check_broken_kernel_exits_2_with_one_line(kernel_dir):
    edit_axioms(kernel_dir, _drop_statement)
    result = CliRunner().invoke(main, ["kernel", "check", str(kernel_dir)])
    assert result.exit_code == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1
    assert "axioms.json: axioms[2]: 'statement' is a required property" in lines[0]
    assert result.stdout == ""


def test_cli_check_rejects_seeds_with_unknown_tension(kernel_dir, tmp_path):
    seeds = tmp_path / "seeds.jsonl"
    row = {"id": "X1", "domain": "work", "prompt": "Hi", "tension": ["sovereignty", "loyalty"]}
    seeds.write_text(json.dumps(row) + "\n")
    result = CliRunner().invoke(main, ["kernel", "check", str(kernel_dir), "--seeds", str(seeds)])
    assert result.exit_code == 2
    assert f"{seeds}:1: tension names unknown axiom(s) loyalty" in result.stderr
