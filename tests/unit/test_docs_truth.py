"""What the README, docs/*.md, the hack/ scripts' comments and the CRD's descriptions name exists.

Readers act on these names: they open the file, run the command with the flag, look for the
condition in `kubectl describe` and the column in `kubectl get tj`. Each check below reads the
names with a pattern narrow enough to have no false positives, looks each up where the code
defines it, and lists every name that is missing. The last two tests feed each check a deliberately
broken name and then the true one, so none of them can pass by finding nothing or fail by
reading too much.
"""

from __future__ import annotations

import ast
import itertools
import os
import re
import shlex
from functools import cache
from pathlib import Path
from typing import Any, Iterator, Optional

import click
import pytest
import yaml

from tandem.api.crd import crd as generate_crd
from tandem.cli import cli
from tandem.contract import CONDITION_TYPES
from tests.conftest import REPO

#: Condition types that Kubernetes and Kueue write on their own objects (pods, batch Jobs, Kueue
#: Workloads). The docs name them where a failure rule or a queued job reads them; they are not
#: TrainingJob conditions, so they need not be in contract.CONDITION_TYPES.
FOREIGN_CONDITIONS = frozenset({
    "DisruptionTarget", "PodScheduled", "Ready", "ContainersReady", "Initialized",  # pods
    "Complete", "Failed", "Suspended", "FailureTarget", "SuccessCriteriaMet",  # batch/v1 Jobs
    "QuotaReserved", "Admitted", "Evicted", "Preempted", "Finished", "PodsReady",  # Kueue Workloads
})

PACKAGE = REPO / "operator" / "tandem"
FENCE = re.compile(r"^```[^\n]*\n(.*?)^```", re.S | re.M)
INLINE = re.compile(r"`([^`\n]+)`")


# --- where names are read ------------------------------------------------------------------------

@cache
def crd() -> dict[str, Any]:
    return generate_crd()


def crd_descriptions() -> str:
    """Every description of the generated CRD: what `kubectl explain` shows."""
    found: list[str] = []

    def walk(node: object) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                if key == "description" and isinstance(value, str):
                    found.append(value)
                else:
                    walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(crd())
    return "\n".join(found)


def script_comments(path: Path) -> str:
    return "\n".join(line for line in path.read_text().splitlines() if line.lstrip().startswith("#"))


def sources() -> dict[str, str]:
    """Name -> text of every place whose names reach readers."""
    texts = {p.relative_to(REPO).as_posix(): p.read_text() for p in [REPO / "README.md", *sorted(REPO.glob("docs/*.md"))]}
    texts.update({f"{p.relative_to(REPO).as_posix()} (comments)": script_comments(p)
                  for p in sorted(REPO.glob("hack/*.sh"))})
    texts["the CRD's descriptions"] = crd_descriptions()
    return texts


SOURCES = sources()


def code(text: str) -> Iterator[str]:
    """Each line of each fenced block, and each inline code span outside them."""
    for block in FENCE.findall(text):
        yield from block.replace("\\\n", " ").splitlines()
    yield from INLINE.findall(FENCE.sub("", text))


def code_words(text: str) -> Iterator[str]:
    """The words of `code(text)`, split where a path or a dotted name cannot go on."""
    for span in code(text):
        yield from (w.rstrip(".,)") for w in re.split(r"[\s,;:`'\"(\[=]+", span) if w)


@cache
def defined_names(path: Path) -> frozenset[str]:
    """The functions, classes and methods of a module, and the names its top level assigns."""
    tree = ast.parse(path.read_text())
    names = {node.name for node in ast.walk(tree)
             if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))}
    for node in tree.body:
        targets = node.targets if isinstance(node, ast.Assign) else [node.target] if isinstance(node, ast.AnnAssign) else []
        names |= {t.id for t in targets if isinstance(t, ast.Name)}
    return frozenset(names)


# --- file paths ----------------------------------------------------------------------------------

def top_level() -> tuple[str, ...]:
    return tuple(sorted(p.name for p in REPO.iterdir() if not p.name.startswith(".")))


#: A path under one of the repository's top-level entries (docs/x.md, jobs/train_ddp.py), or
#: under the package (controller/writer.py, tandem/local/threads.py). Not preceded by anything a
#: longer path would have (an absolute path, ~/.kube/config), and ending before a wildcard or a
#: placeholder: `images/*.Dockerfile` and `<run>/metrics.jsonl` name no one file.
PATH = re.compile(
    r"(?<![\w./~$<>{*:-])"
    r"((?:tandem|" + "|".join(re.escape(n) for n in top_level()) + "|"
    + "|".join(re.escape(p.name) for p in PACKAGE.iterdir() if p.is_dir() and p.name != "__pycache__")
    + r")(?:/[\w.-]+)*/?)"
    r"(?![\w*<{/-]|:[^:\s]|\.\w)"
)

def named_paths(text: str) -> set[str]:
    """Paths in `text`, and bare file names in its code. A path needs a slash inside ("docs" is a
    word), and one with neither an extension, a trailing slash nor a second slash is left out:
    `jobs/s` is a rate and `tandem/operator` an image, not folders."""
    paths = set()
    for match in PATH.finditer(text):
        path = match.group(1).rstrip(".")
        if "/" not in path.rstrip("/"):
            continue
        if path.count("/") == 1 and not path.endswith("/") and "." not in path.rsplit("/", 1)[1]:
            continue
        paths.add(path)
    return paths | {w for w in code_words(text) if BARE_FILE.fullmatch(w)}


#: A bare file name in code (`timing.py`, `test.sh`): a module or script of the repository.
BARE_FILE = re.compile(r"[\w-]+\.(?:py|sh|md|ipynb)")


@cache
def file_names() -> frozenset[str]:
    """Every file name in the repository, hidden folders (.git, .tandem) and caches left out."""
    names: set[str] = set()
    for _, folders, files in os.walk(REPO):
        folders[:] = [f for f in folders if not f.startswith(".") and f != "__pycache__"]
        names.update(files)
    return frozenset(names)


def resolves(path: str, folder: Path = REPO) -> bool:
    """At the repository root, beside the text that names it (`folder`: a Markdown link is relative
    to its document), or in the package (docs name modules as `metrics/summary.py`); a module's
    attribute (`api/load.SpecLoader`) must be defined in the module."""
    bare = path.rstrip("/")
    if BARE_FILE.fullmatch(bare):
        return bare in file_names()
    for root in dict.fromkeys((REPO, folder, REPO / "operator", PACKAGE)):
        if (root / bare).exists():
            return True
        module, _, attribute = bare.rpartition(".")
        if attribute.isidentifier() and (root / f"{module}.py").is_file():
            return attribute in defined_names(root / f"{module}.py")
    return False


def missing_paths(text: str, folder: Path = REPO) -> list[str]:
    return sorted(p for p in named_paths(text) if not resolves(p, folder))


@pytest.mark.parametrize("source", sorted(SOURCES))
def test_every_file_named_exists(source: str):
    folder = (REPO / source).parent if (REPO / source).is_file() else REPO
    assert missing_paths(SOURCES[source], folder) == [], f"{source} names files that do not exist"


# --- modules and their names: `metrics.summary`, `api.load.SpecLoader`, `tandem.Client` -----------

#: A dotted name in code that starts at a module of the package. Read in code spans only: in prose
#: "metrics.jsonl" and "status.metrics" are other things.
MODULES = sorted({p.stem for p in PACKAGE.iterdir() if p.suffix == ".py" or (p / "__init__.py").exists()}
                 - {"__init__", "__main__"})
DOTTED = re.compile(r"(?:tandem\.)?(?:" + "|".join(map(re.escape, MODULES)) + r")(?:\.\w+)+")
FILE_SUFFIXES = frozenset({"py", "md", "yaml", "json", "jsonl", "sh", "toml", "txt", "png", "j2"})


def module_name_resolves(dotted: str) -> bool:
    """The longest prefix that is a module, then a name that module defines; or a spec field of the
    same spelling (`metrics.enabled` is spec.metrics.enabled)."""
    parts = dotted.split(".")[1:] if dotted.startswith("tandem.") else dotted.split(".")
    path, rest = PACKAGE, list(parts)
    while rest and (path / rest[0]).is_dir():
        path = path / rest.pop(0)
    if rest and (path / f"{rest[0]}.py").is_file():
        path = path / f"{rest.pop(0)}.py"
    module = path / "__init__.py" if path.is_dir() else path
    return not rest or rest[0] in defined_names(module) or has_field(["spec", *parts])


def named_modules(text: str) -> set[str]:
    return {w for w in code_words(text) if DOTTED.fullmatch(w) and w.rsplit(".", 1)[1] not in FILE_SUFFIXES}


def missing_module_names(text: str) -> list[str]:
    return sorted(n for n in named_modules(text) if not module_name_resolves(n))


@pytest.mark.parametrize("source", sorted(SOURCES))
def test_every_module_and_name_shown_exists(source: str):
    assert missing_module_names(SOURCES[source]) == [], f"{source} names modules or names the package lacks"


# --- tests cited as evidence (path::name) --------------------------------------------------------

CITED_TEST = re.compile(r"(tests/[\w/]+\.py)::(\w+)")


def missing_tests(text: str) -> list[str]:
    return sorted(f"{path}::{name}" for path, name in CITED_TEST.findall(text)
                  if not (REPO / path).exists() or name not in defined_names(REPO / path))


@pytest.mark.parametrize("source", sorted(SOURCES))
def test_every_test_cited_exists(source: str):
    assert missing_tests(SOURCES[source]) == [], f"{source} cites tests that do not exist"


# --- sections cited: (docs/security.md, "Network") -----------------------------------------------

CITED_SECTION = re.compile(r"((?:docs/)?[\w-]+\.md),? \"([^\"]+)\"")


def headings(path: Path) -> set[str]:
    return {line.lstrip("#").strip() for line in path.read_text().splitlines() if line.startswith("#")}


def missing_sections(text: str) -> list[str]:
    missing = []
    for document, section in CITED_SECTION.findall(text):
        path = next((p for p in (REPO / document, REPO / "docs" / document) if p.exists()), REPO / document)
        if not path.exists() or not any(h == section or h.startswith(section) for h in headings(path)):
            missing.append(f'{document}, "{section}"')
    return sorted(missing)


@pytest.mark.parametrize("source", sorted(SOURCES))
def test_every_section_cited_exists(source: str):
    assert missing_sections(SOURCES[source]) == [], f"{source} cites sections that do not exist"


# --- condition types -----------------------------------------------------------------------------

#: "condition `X`", "conditions X", "the `X` condition", "its NameConflict condition", and
#: `@.type=="X"` in a jsonpath. Before the word condition a plain word must be CamelCase with two
#: humps at least: "Each condition" names none.
CAMEL = r"[A-Z][a-z]+(?:[A-Z][a-z]+)*"
CONDITION = re.compile(
    rf"\bconditions? `?({CAMEL})\b`?"
    rf"|`({CAMEL})` conditions?\b"
    r"|\b([A-Z][a-z]+(?:[A-Z][a-z]+)+) conditions?\b"
    r"|@\.type==\"(\w+)\""
)


def named_conditions(text: str) -> set[str]:
    return {next(g for g in match.groups() if g) for match in CONDITION.finditer(text)}


def unknown_conditions(text: str) -> list[str]:
    known = set(CONDITION_TYPES) | FOREIGN_CONDITIONS
    return sorted(named_conditions(text) - known)


@pytest.mark.parametrize("source", sorted(SOURCES))
def test_every_condition_type_named_is_written(source: str):
    assert unknown_conditions(SOURCES[source]) == [], (
        f"{source} names condition types the operator never writes (contract.CONDITION_TYPES)")


# --- printer columns -----------------------------------------------------------------------------

def printer_columns() -> list[dict[str, object]]:
    columns: list[dict[str, object]] = crd()["spec"]["versions"][0]["additionalPrinterColumns"]
    return columns


#: The header `kubectl get tj` prints: NAME, then column names in capitals.
HEADER = re.compile(r"\bNAME((?:[ \t]+[A-Z][A-Z/%]+){2,})[ \t]*$", re.M)
#: "a `Queue` column", "the Progress and ETA columns".
COLUMN = re.compile(r"`?\b([A-Z][A-Za-z]+)`? (?:and `?([A-Z][A-Za-z]+)`? )?columns?\b")


def column_problems(text: str) -> list[str]:
    columns = printer_columns()
    names = {str(c["name"]).upper() for c in columns}
    default = ["NAME", *(str(c["name"]).upper() for c in columns if not c.get("priority"))]
    problems = []
    for match in HEADER.finditer(text):
        header = ["NAME", *match.group(1).split()]
        if not set(header[1:]) <= names:
            problems.append(f"header {' '.join(header)}: no column {sorted(set(header[1:]) - names)}")
        elif header != default and header != ["NAME", *(str(c['name']).upper() for c in columns)]:
            problems.append(f"header {' '.join(header)}: kubectl prints {' '.join(default)}")
    for match in COLUMN.finditer(text):
        problems += [f"column {name}" for name in match.groups() if name and name.upper() not in names]
    return problems


@pytest.mark.parametrize("source", sorted(SOURCES))
def test_every_printer_column_named_exists(source: str):
    assert column_problems(SOURCES[source]) == [], f"{source} shows printer columns the CRD lacks"


# --- spec and status fields ----------------------------------------------------------------------

#: `spec.metrics.stragglerThreshold`, status.progress.eta: a TrainingJob field, read down the CRD's
#: schema. Not preceded by a dot: `.status.conditions[...]` in a jsonpath is checked the same way.
FIELD = re.compile(r"(?:(?<=[^\w$.-])\.|(?<![\w$./-]))\b(spec|status)((?:\.[a-zA-Z]\w*)+)")
#: Fields of other kinds the docs name: the pod template of a batch/v1 Job or a Deployment, which
#: the admission policies read.
FOREIGN_FIELDS = ("spec.template",)


def has_field(parts: list[str]) -> bool:
    node = crd()["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    for part in parts:
        while "items" in node:
            node = node["items"]
        if "properties" not in node:  # a free-form object (a podTemplate's volumes): anything below
            return bool(node.get("x-kubernetes-preserve-unknown-fields") or node.get("additionalProperties"))
        if part not in node["properties"]:
            return False
        node = node["properties"][part]
    return True


def missing_fields(text: str) -> list[str]:
    named = {".".join([m.group(1), *m.group(2).strip(".").split(".")]) for m in FIELD.finditer(text)}
    return sorted(f for f in named if not f.startswith(FOREIGN_FIELDS) and not has_field(f.split(".")))


@pytest.mark.parametrize("source", sorted(SOURCES))
def test_every_field_named_exists(source: str):
    assert missing_fields(SOURCES[source]) == [], f"{source} names TrainingJob fields the CRD lacks"


# --- commands and flags --------------------------------------------------------------------------

def commands(text: str) -> Iterator[list[str]]:
    """The words of each command in code, up to a comment or the next command of the line."""
    for line in code(text):
        for part in re.split(r"&&|\|\||;|\|", re.sub(r"\s#.*$", "", line)):
            try:
                yield shlex.split(part)
            except ValueError:
                yield part.split()


def tandem_invocations(text: str) -> Iterator[list[str]]:
    """The words after `tandem` (or `python -m tandem`) of each such command."""
    for words in commands(text):
        if words[:3] == ["python", "-m", "tandem"]:
            words = words[2:]
        if words[:1] == ["tandem"] and len(words) > 1:
            yield words[1:]


def set_keys(words: list[str]) -> list[str]:
    """The keys of the `--set KEY=VALUE` options among `words`."""
    return [value.split("=")[0] for option, value in itertools.pairwise(words) if option == "--set"]


def command_problem(words: list[str]) -> Optional[str]:
    """Why `tandem WORDS` names a command or option the CLI lacks; None when it has them all."""
    context = click.Context(cli, info_name="tandem")
    command: click.Command = cli
    for word in words:
        if word == "--":
            break
        if word.startswith("-"):
            flag = word.strip("[]").split("=")[0]
            options = {o for p in command.params for o in (*p.opts, *p.secondary_opts)}
            options |= {"--help", "-h"}
            if re.fullmatch(r"--?[a-z][\w-]*", flag) and flag not in options:
                name = "tandem" if command is cli else command.name
                return f"tandem {' '.join(words)}: {name} has no option {flag}"
        elif isinstance(command, click.Group) and re.fullmatch(r"[a-z][a-z-]*", word):
            sub = command.get_command(context, word)
            if sub is None:
                return f"tandem {' '.join(words)}: no command {word!r}"
            command = sub
    unknown = [key for key in set_keys(words) if not has_field(["spec", *key.split(".")])]
    return f"tandem {' '.join(words)}: --set {unknown[0]} is no spec field" if unknown else None


def command_problems(text: str) -> list[str]:
    return [p for words in tandem_invocations(text) if (p := command_problem(words))]


@pytest.mark.parametrize("source", sorted(SOURCES))
def test_every_command_and_flag_shown_exists(source: str):
    assert command_problems(SOURCES[source]) == [], f"{source} shows tandem commands or options that do not exist"


# --- Helm values ---------------------------------------------------------------------------------

@cache
def chart_values() -> dict[str, Any]:
    values: dict[str, Any] = yaml.safe_load((REPO / "charts" / "tandem" / "values.yaml").read_text())
    return values


def is_value(key: str) -> bool:
    node: Any = chart_values()
    for part in key.split("."):
        if not isinstance(node, dict) or part not in node:
            return False
        node = node[part]
    return True


def values_table_keys(text: str) -> Iterator[str]:
    """The keys in the first column of a `| value | default | ... |` table; `.port` after
    `metricsService.enabled` is metricsService.port, and `ray.image.*` is ray.image."""
    in_table = False
    for line in text.splitlines():
        in_table = line.startswith("| value |") or (in_table and line.startswith("|"))
        if not in_table or line.startswith(("| value |", "| ---")):
            continue
        parent = ""
        for key in INLINE.findall(line.split("|")[1]):
            key = parent + key if key.startswith(".") else key
            key = key.removesuffix(".*")
            parent = key.rsplit(".", 1)[0] if "." in key else ""
            yield key


def unknown_values(text: str) -> list[str]:
    helm = [key for words in commands(text) if words[:1] == ["helm"] for key in set_keys(words)]
    return sorted({key for key in [*helm, *values_table_keys(text)] if not is_value(key)})


@pytest.mark.parametrize("source", sorted(SOURCES))
def test_every_chart_value_named_exists(source: str):
    assert unknown_values(SOURCES[source]) == [], f"{source} names chart values charts/tandem/values.yaml lacks"


# --- TANDEM_* environment names ------------------------------------------------------------------

ENV_NAME = re.compile(r"\bTANDEM_[A-Z0-9_]*[A-Z0-9]\b")


@cache
def code_text() -> str:
    files = [*PACKAGE.rglob("*.py"), *PACKAGE.rglob("*.j2"), *(REPO / "tests").rglob("*.py"),
             *(REPO / "benchmarks").glob("*.py"), *(REPO / "benchmarks").glob("*.sh"), *(REPO / "hack").glob("*.sh"),
             *(REPO / "images").glob("*"), *(REPO / "charts").rglob("*.yaml"), *(REPO / "charts").rglob("*.tpl")]
    return "\n".join(p.read_text() for p in files if p.is_file() and p.resolve() != Path(__file__).resolve())


def unknown_env_names(text: str) -> list[str]:
    return sorted(set(ENV_NAME.findall(text)) - set(ENV_NAME.findall(code_text())))


@pytest.mark.parametrize("source", sorted(SOURCES))
def test_every_tandem_env_name_exists(source: str):
    assert unknown_env_names(SOURCES[source]) == [], f"{source} names TANDEM_* variables no code reads or sets"


# --- each check fails on a broken name ------------------------------------------------------------

BROKEN = """
Run `tandem run jobs/mnist-ddp.yaml --wrkers 4` or `tandem sumbit x`; see operator/tandem/controller/kube.py
and `figures/summry.py` or `timming.py` (tests/unit/test_crd.py::test_no_such_test; docs/security.md, "No such section").
Its figures are in status.metrics.tokenz; spec.metrics.stragglerThreshold names the straggler.
`figures.summary.judge_stragler` judges it, `controller.kube.KubeWriter` writes it.
The job shows condition `TensorBoardServe` True, and `kubectl get tj -o wide` adds a `Tokens` column.

```
NAME     FRAMEWORK   WORKERS   PHASE     THROUGHPUT   AGE
```
Set TANDEM_NO_SUCH_NAME, or `tandem run x.yaml --set metrics.enabeld=false`.

```bash
helm install tandem charts/tandem \\
  --set rays.enabled=true
```

| value | default | what it does |
| --- | --- | --- |
| `metricsService.enabled` / `.prot` | `true` | a Service |
"""


def test_each_check_finds_a_broken_name():
    assert missing_paths(BROKEN) == ["figures/summry.py", "operator/tandem/controller/kube.py", "timming.py"]
    assert missing_tests(BROKEN) == ["tests/unit/test_crd.py::test_no_such_test"]
    assert missing_sections(BROKEN) == ['docs/security.md, "No such section"']
    assert unknown_conditions(BROKEN) == ["TensorBoardServe"]
    problems = column_problems(BROKEN)
    assert len(problems) == 2 and "kubectl prints" in problems[0] and problems[1] == "column Tokens", problems
    assert [p.split(": ", 1)[1] for p in command_problems(BROKEN)] == [
        "run has no option --wrkers", "no command 'sumbit'", "--set metrics.enabeld is no spec field"]
    assert unknown_values(BROKEN) == ["metricsService.prot", "rays.enabled"]
    assert unknown_env_names(BROKEN) == ["TANDEM_NO_SUCH_NAME"]
    assert missing_fields(BROKEN) == ["status.metrics.tokenz"]
    assert missing_module_names(BROKEN) == ["controller.kube.KubeWriter", "figures.summary.judge_stragler", "metrics.enabeld"]


def test_the_checks_accept_true_names():
    """The same sentences with the names the code has: the checks are not merely strict."""
    fixes = {"--wrkers": "--workers", "sumbit": "submit", "kube.py": "writer.py", "summry": "summary",
             "timming": "timing", "test_no_such_test": "test_committed_crd_matches_the_model",
             "No such section": "Network", "TensorBoardServe": "TensorBoardServed", "`Tokens`": "`Queue`",
             "PHASE     THROUGHPUT   AGE": "PHASE RESTARTS INPLACE THROUGHPUT EFFICIENCY PROGRESS ETA AGE",
             "TANDEM_NO_SUCH_NAME": "TANDEM_UPDATE_GOLDEN",
             "tokenz": "throughput", "judge_stragler": "judge_straggler", "controller.kube": "controller.writer",
             "enabeld": "enabled", "rays.": "ray.", ".prot": ".port"}
    true = BROKEN
    for broken, fixed in fixes.items():
        true = true.replace(broken, fixed)
    checks = [missing_paths, missing_tests, missing_sections, unknown_conditions, column_problems,
              missing_fields, missing_module_names, command_problems, unknown_values, unknown_env_names]
    assert {check.__name__: check(true) for check in checks} == {check.__name__: [] for check in checks}

