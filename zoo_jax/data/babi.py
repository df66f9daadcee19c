"""The bAbI question-answering tasks v1.2, English (Weston et al. 2015, arXiv:1502.05698; CC
BY 3.0), read in their original file format from the archives in `babi/`
(`tasks_1-20_v1-2_en.tar.gz`: 1,000 training questions per task; `…_en-10k.tar.gz`: 10,000),
each file checked against the SHA-256 manifest beside its archive.

The format: a line is `ID text`; IDs restart at 1 where a story starts; a question line is
`ID question<TAB>answer<TAB>supporting fact IDs`. `parse` gives one `Example` per question:
the story's statements before it (questions are not statements), the question, the answer
and the indices of its supporting statements. A line that does not parse is an `InputError`
naming the file, the line and the reason.

Words are lower-cased, the full stops and question marks dropped. A multi-word answer
(task 8's `apple,football`, task 19's `n,w`) is one word, as in Sukhbaatar et al. 2015: the
model picks it from the vocabulary like any other.

`Vocabulary`: built from the training files of the set it encodes (never the test files):
id 0 is padding, 1 stands for a word the training files never use, then the words sorted.
`VOCAB_SIZE` bounds both sets (1k: 175 ids, 10k: 178), the card's number of classes.

`encode` lays an example out for `MemN2N` as one `(memory_size + 1, sentence_length)` array
of ids: row 0 the most recent statement, row 1 the one before, … (the `memory_size` most
recent, as the paper keeps the last 50), rows of padding for a shorter story, and the last
row the question. The split `validation` is the last 10 % of each task's training questions
(the paper holds out 10 %); `train` is the rest.

The 10k set's task 3 training file is missing from the archive (see the data README):
`babi-10k-qa3` has only its test split, and `babi-10k` (all tasks) trains on the other 19.
"""

from __future__ import annotations

import dataclasses
import functools
import os
import re
from pathlib import Path

import numpy as np

from zoo_jax.data import vision
from zoo_jax.errors import DataError, InputError, UnknownNameError

ARCHIVES = {"1k": "tasks_1-20_v1-2_en", "10k": "tasks_1-20_v1-2_en-10k"}
TAR_SHA256 = {
    "1k": "9acbff689744f6d04c71d91570ec383b9714b3293d6ce6ce17c0b66ad6f6c455",
    "10k": "e8b3e40b552fffed796ae0372ebd98987495f64092807758d9567d3828007585",
}
TASKS = tuple(range(1, 21))
SPLITS = ("train", "validation", "test")
MEMORY_SIZE, SENTENCE_LENGTH = 50, 11  # the paper's memory; the longest sentence in the files
VOCAB_SIZE = 178
PAD, UNKNOWN = 0, 1
VALIDATION_FRACTION = 0.1
_MEMBER = re.compile(r"/en(-10k)?/qa(\d+)_[a-z-]+_(train|test)\.txt$")
_WORD = re.compile(r"[^\s.?]+")


@dataclasses.dataclass(frozen=True)
class Example:
    """One question: the story's statements before it (token lists, oldest first), the
    question's tokens, the answer, and the indices (into `story`) of its supporting facts."""

    story: tuple[tuple[str, ...], ...]
    question: tuple[str, ...]
    answer: str
    supporting: tuple[int, ...]


def tokens(text: str) -> tuple[str, ...]:
    return tuple(_WORD.findall(text.lower()))


def parse(text: str, source: str) -> list[Example]:
    """The questions of one task file, in order."""
    examples: list[Example] = []
    story: list[tuple[str, ...]] = []
    line_of_id: dict[int, int] = {}  # a story's statement IDs → their index in `story`
    previous = 0
    for number, line in enumerate(text.splitlines(), 1):
        where = f"{source}:{number}"
        head, _, rest = line.partition(" ")
        if not head.isdigit() or not rest.strip():
            raise InputError(f"{where}: expected 'ID text', got {line[:60]!r}")
        line_id = int(head)
        if line_id == 1:
            story, line_of_id = [], {}
        elif line_id != previous + 1:
            raise InputError(f"{where}: line ID {line_id} follows {previous} (IDs count up "
                             "from 1 within a story)")  # fmt: skip
        previous = line_id
        if "\t" not in rest:
            line_of_id[line_id] = len(story)
            story.append(tokens(rest))
            continue
        fields = rest.split("\t")
        if len(fields) != 3 or not fields[1].strip():
            raise InputError(f"{where}: a question line is 'ID question<TAB>answer<TAB>"
                             f"supporting IDs', got {len(fields)} tab-separated fields")  # fmt: skip
        question, answer, support = fields
        try:
            supporting = tuple(line_of_id[int(s)] for s in support.split())
        except (ValueError, KeyError):
            raise InputError(f"{where}: supporting facts {support!r} are not IDs of this "
                             "story's statements") from None  # fmt: skip
        examples.append(Example(tuple(story), tokens(question), answer.strip().lower(),
                                supporting))  # fmt: skip
    if not examples:
        raise InputError(f"{source}: no questions")
    return examples


def _archive(size: str, data_dir: str | os.PathLike | None) -> Path:
    name = f"{ARCHIVES[size]}.tar.gz"
    for d in vision.search_path(data_dir):
        if (d / "babi" / name).is_file():
            return d / "babi" / name
    err = vision.missing(f"babi/{name}", data_dir)
    raise DataError(f"{err} (bAbI v1.2: research.facebook.com/downloads/babi)")


@functools.lru_cache(maxsize=2)
def _read(path: Path, size: str) -> dict[tuple[int, str], list[Example]]:
    manifest = path.parent / f"{ARCHIVES[size]}.members.sha256"
    files: dict[tuple[int, str], list[Example]] = {}
    for name, data in vision.checked_tar_members(path, manifest, TAR_SHA256[size]).items():
        match = _MEMBER.search(name)
        if match is not None:
            files[int(match[2]), match[3]] = parse(data.decode("ascii"), f"{path.name}:{name}")
    return files


def read(size: str, task: int, split: str, data_dir=None) -> list[Example]:
    """The examples of task `task` (1–20), split `train`, `validation` or `test`, of the
    `1k` or `10k` set."""
    if size not in ARCHIVES:
        raise UnknownNameError("bAbI training set size", size, ARCHIVES)
    if task not in TASKS:
        raise InputError(f"bAbI has tasks 1 to 20, not {task}")
    if split not in SPLITS:
        raise UnknownNameError("split of bAbI", split, SPLITS)
    files = _read(_archive(size, data_dir), size)
    file_split = "test" if split == "test" else "train"
    if (task, file_split) not in files:
        raise DataError(f"bAbI {size} task {task}: its {file_split} file is not in the archive "
                        "(the 10k task 3 training file is missing; see the data README)")  # fmt: skip
    examples = files[task, file_split]
    cut = len(examples) - round(VALIDATION_FRACTION * len(examples))
    return {"train": examples[:cut], "validation": examples[cut:], "test": examples}[split]


def available_tasks(size: str, split: str, data_dir=None) -> list[int]:
    """The tasks whose file for `split` the archive holds."""
    files = _read(_archive(size, data_dir), size)
    file_split = "test" if split == "test" else "train"
    return [t for t in TASKS if (t, file_split) in files]


@dataclasses.dataclass(frozen=True)
class Vocabulary:
    words: tuple[str, ...]  # ids 2, 3, …

    def __len__(self) -> int:
        return len(self.words) + 2

    @functools.cached_property
    def ids(self) -> dict[str, int]:
        return {w: i + 2 for i, w in enumerate(self.words)}

    def id(self, word: str) -> int:
        return self.ids.get(word, UNKNOWN)

    def word(self, i: int) -> str:
        return {PAD: "<pad>", UNKNOWN: "<unknown>"}.get(int(i)) or self.words[int(i) - 2]


@functools.lru_cache(maxsize=2)
def vocabulary(size: str, data_dir=None) -> Vocabulary:
    """The words and answers of all the training files of the `size` set."""
    files = _read(_archive(size, data_dir), size)
    words: set[str] = set()
    for (_, split), examples in files.items():
        if split == "train":
            for e in examples:
                words.update(w for s in e.story for w in s)
                words.update(e.question)
                words.add(e.answer)
    if len(words) + 2 > VOCAB_SIZE:
        raise DataError(f"bAbI {size}: {len(words) + 2} ids, more than VOCAB_SIZE {VOCAB_SIZE}")
    return Vocabulary(tuple(sorted(words)))


def encode(
    examples: list[Example],
    vocab: Vocabulary,
    memory_size: int = MEMORY_SIZE,
    sentence_length: int = SENTENCE_LENGTH,
) -> tuple[np.ndarray, np.ndarray]:
    """`(inputs (n, memory_size + 1, sentence_length), answers (n,))` int32 (see the
    module): the most recent statements first, the question last."""
    if memory_size < 1:
        raise InputError(f"the memory must hold at least one statement, got {memory_size}")
    x = np.zeros((len(examples), memory_size + 1, sentence_length), np.int32)
    answers = np.empty(len(examples), np.int32)
    for n, e in enumerate(examples):
        if len(e.question) > sentence_length:
            raise InputError(f"a question of {len(e.question)} words ({' '.join(e.question)!r}) "
                             f"is longer than the memory's rows of {sentence_length}")  # fmt: skip
        recent = e.story[::-1][:memory_size]
        for row, words in enumerate((*recent, *[()] * (memory_size - len(recent)), e.question)):
            if len(words) > sentence_length:
                raise InputError(f"a statement of {len(words)} words is longer than the "
                                 f"memory's rows of {sentence_length}")  # fmt: skip
            x[n, row, : len(words)] = [vocab.id(w) for w in words]
        answers[n] = vocab.id(e.answer)
    return x, answers


DATASET = re.compile(r"babi(?:-(10k))?(?:-qa(\d+))?$")


def dataset_name(name: str) -> tuple[str, tuple[int, ...]] | None:
    """`babi` (the 1k set, all 20 tasks), `babi-10k`, `babi-qa3`, `babi-10k-qa3` → (size,
    tasks); None for a name of another dataset."""
    match = DATASET.match(name)
    if match is None:
        return None
    size = "10k" if match[1] else "1k"
    if match[2] is None:
        return size, TASKS
    if int(match[2]) not in TASKS:
        raise UnknownNameError("bAbI task", name, [f"babi-qa{t}" for t in TASKS])
    return size, (int(match[2]),)


def dataset_tasks(name: str, data_dir=None) -> tuple[str, tuple[int, ...]]:
    """(size, the tasks dataset `name` reads): all tasks together skip those whose training
    file is missing (the 10k task 3), in every split, so they are the same throughout."""
    size, tasks = dataset_name(name)
    if len(tasks) > 1:
        tasks = tuple(available_tasks(size, "train", data_dir))
    return size, tasks


def load(name: str, split: str, input_shape: tuple[int, ...], data_dir=None):
    """`(inputs, answers)` of dataset `name` (`dataset_name`), shaped `input_shape`
    (`(memory_size + 1, sentence_length)`), of the tasks `dataset_tasks` names."""
    size, tasks = dataset_tasks(name, data_dir)
    if len(input_shape) != 2:
        raise InputError(f"bAbI feeds (memory + question, words) ids, not {input_shape}")
    examples = [e for t in tasks for e in read(size, t, split, data_dir)]
    return encode(examples, vocabulary(size, data_dir), input_shape[0] - 1, input_shape[1])
