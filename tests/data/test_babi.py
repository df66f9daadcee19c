"""The bAbI reader: the original format, the manifests' checksums, the vocabulary of the
training files, the memory layout, and one line per kind of bad input."""

import gzip
import io
import shutil
import tarfile

import numpy as np
import pytest

from zoo_jax.data import babi, datasets
from zoo_jax.errors import DataError, InputError

STORY = """1 Mary moved to the bathroom.
2 John went to the hallway.
3 Where is Mary? \tbathroom\t1
4 Daniel went back to the hallway.
5 Where is Daniel?\thallway\t4
1 Sandra journeyed to the office.
2 Where is Sandra?\toffice\t1
"""


def test_parse_gives_one_example_per_question():
    examples = babi.parse(STORY, "qa1_test.txt")
    assert len(examples) == 3
    first, second, third = examples
    assert first.story == (("mary", "moved", "to", "the", "bathroom"),
                           ("john", "went", "to", "the", "hallway"))  # fmt: skip
    assert first.question == ("where", "is", "mary") and first.answer == "bathroom"
    assert first.supporting == (0,)
    assert len(second.story) == 3 and second.supporting == (2,)  # questions are not statements
    assert third.story == (("sandra", "journeyed", "to", "the", "office"),)  # a new story


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("1 Mary moved.\nx John went.\n", r"qa\.txt:2: expected 'ID text'"),
        ("1 Mary moved.\n3 John went.\n", r"qa\.txt:2: line ID 3 follows 1"),
        ("1 Mary moved.\n2 Where is Mary?\tkitchen\n", r"qa\.txt:2: a question line .* 2 tab"),
        ("1 Mary moved.\n2 Where is Mary?\tkitchen\t7\n", r"qa\.txt:2: supporting facts '7'"),
        ("1 Mary moved.\n", r"qa\.txt: no questions"),
    ],
)
def test_a_file_that_does_not_parse_names_the_line_and_the_reason(text, message):
    with pytest.raises(InputError, match=message):
        babi.parse(text, "qa.txt")


def test_the_real_tasks_and_their_vocabulary():
    for task in (1, 19):
        assert len(babi.read("1k", task, "test")) == 1000
        assert len(babi.read("1k", task, "train")) == 900  # 10 % held out
        assert len(babi.read("1k", task, "validation")) == 100
    vocab = babi.vocabulary("1k")
    assert len(vocab) == 175 and vocab.word(0) == "<pad>" and vocab.id("n,w") > 1
    # a word only the test files use is unknown: task 8's test answer 'football,apple,milk'
    assert vocab.id("football,apple,milk") == babi.UNKNOWN
    x, y = datasets.load("babi-qa1", "test", (51, 11))
    assert x.shape == (1000, 51, 11) and x.dtype == np.int32 and y.shape == (1000,)
    e = babi.read("1k", 1, "test")[0]
    assert [vocab.word(i) for i in x[0, 0] if i] == list(e.story[-1])  # most recent first
    assert [vocab.word(i) for i in x[0, -1] if i] == list(e.question)
    assert vocab.word(y[0]) == e.answer
    assert datasets.is_tokens("babi-10k-qa3") and datasets.splits("babi-qa7") == babi.SPLITS


def test_bad_layouts_and_missing_files_are_one_line_errors(tmp_path):
    examples = babi.read("1k", 1, "test")[:2]
    with pytest.raises(
        InputError, match=r"a question of 3 words .* longer than the memory's rows of 2"
    ):
        babi.encode(examples, babi.vocabulary("1k"), sentence_length=2)
    with pytest.raises(InputError, match="at least one statement"):
        babi.encode(examples, babi.vocabulary("1k"), memory_size=0)
    with pytest.raises(DataError, match="task 3: its train file is not in the archive"):
        babi.read("10k", 3, "train")
    assert 3 not in babi.available_tasks("10k", "train")
    # a file changed inside the archive fails its manifest's SHA-256
    source = babi._archive("1k", None)
    (tmp_path / "babi").mkdir()
    shutil.copy(source.parent / "tasks_1-20_v1-2_en.members.sha256", tmp_path / "babi")
    with tarfile.open(fileobj=io.BytesIO(gzip.decompress(source.read_bytes()))) as tar:
        out = io.BytesIO()
        with tarfile.open(fileobj=out, mode="w") as new:
            for m in tar.getmembers():
                data = tar.extractfile(m).read() if m.isfile() else None
                if data is not None and m.name.endswith("qa1_single-supporting-fact_test.txt"):
                    data = data.replace(b"Mary", b"Mara", 1)
                    m.size = len(data)
                new.addfile(m, io.BytesIO(data) if data is not None else None)
    (tmp_path / "babi" / "tasks_1-20_v1-2_en.tar.gz").write_bytes(gzip.compress(out.getvalue()))
    with pytest.raises(DataError, match=r"qa1_single-supporting-fact_test\.txt has SHA-256"):
        babi.read("1k", 1, "test", data_dir=str(tmp_path))
