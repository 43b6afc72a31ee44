"""load_records: every supported file type round-trips, and bad files give one-line errors."""

import json

import pytest

from alignlab.data.load import load_records
from alignlab.errors import UsageError

RECORDS = [
    {
        "prompt": [{"role": "user", "content": "Sky?"}],
        "completion": [{"role": "assistant", "content": "Blue."}],
    },
    {
        "prompt": [{"role": "user", "content": "Grass?"}],
        "completion": [{"role": "assistant", "content": "Green."}],
    },
]


def test_jsonl(write_jsonl):
    assert load_records(write_jsonl(RECORDS)) == RECORDS


def test_jsonl_trailing_blank_lines_are_fine(tmp_path):
    path = tmp_path / "d.jsonl"
    path.write_text('{"text": "a"}\n{"text": "b"}\n\n  \n')
    assert load_records(path) == [{"text": "a"}, {"text": "b"}]


def test_json_list_and_data_key(tmp_path):
    (tmp_path / "a.json").write_text(json.dumps(RECORDS))
    (tmp_path / "b.json").write_text(json.dumps({"data": RECORDS, "version": 2}))
    assert load_records(tmp_path / "a.json") == RECORDS
    assert load_records(tmp_path / "b.json") == RECORDS


def test_parquet_round_trip(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    rows = [dict(r, score=float(i)) for i, r in enumerate(RECORDS)]
    pq.write_table(pa.Table.from_pylist(rows), tmp_path / "d.parquet")
    assert load_records(tmp_path / "d.parquet") == rows


def test_save_to_disk_round_trip(tmp_path):
    import datasets

    datasets.Dataset.from_list(RECORDS).save_to_disk(str(tmp_path / "ds"))
    assert load_records(tmp_path / "ds") == RECORDS


def test_save_to_disk_dataset_dict_reads_train(tmp_path):
    import datasets

    dd = datasets.DatasetDict(
        {"train": datasets.Dataset.from_list(RECORDS), "test": datasets.Dataset.from_list(RECORDS[:1])}
    )
    dd.save_to_disk(str(tmp_path / "dd"))
    assert load_records(tmp_path / "dd") == RECORDS


def _error(path) -> str:
    with pytest.raises(UsageError) as e:
        load_records(path)
    return str(e.value)


def test_missing_file(tmp_path):
    assert _error(tmp_path / "nope.jsonl") == f"{tmp_path / 'nope.jsonl'}: no such file or directory"


def test_unknown_extension(tmp_path):
    path = tmp_path / "d.csv"
    path.write_text("a,b\n")
    assert _error(path) == (
        f"{path}: unknown dataset extension '.csv'; expected one of .jsonl, .json, .parquet"
        " or a directory written by datasets' save_to_disk"
    )


def test_invalid_json_line_names_the_line(tmp_path):
    path = tmp_path / "d.jsonl"
    path.write_text('{"text": "a"}\n{"text": "b"}\n{"text": "c"\n')
    assert _error(path) == f"{path}: line 3: invalid JSON: Expecting ',' delimiter (column 13)"


def test_blank_line_inside_jsonl(tmp_path):
    # Record numbers are line numbers, so a blank line in the middle would shift every later one.
    path = tmp_path / "d.jsonl"
    path.write_text('{"text": "a"}\n\n{"text": "b"}\n')
    assert _error(path) == f"{path}: line 2: blank line; each line must be one JSON object"


def test_non_object_record(tmp_path):
    path = tmp_path / "d.jsonl"
    path.write_text('{"text": "a"}\n["text", "b"]\n')
    assert _error(path) == f"{path}: record 2: expected a JSON object, got list"


def test_json_of_wrong_shape(tmp_path):
    path = tmp_path / "d.json"
    path.write_text('{"rows": []}')
    assert _error(path) == f'{path}: expected a JSON list of objects or {{"data": [...]}}, got object'


def test_empty_dataset(tmp_path):
    path = tmp_path / "d.jsonl"
    path.write_text("\n")
    assert _error(path) == f"{path}: the dataset has no records"


def test_directory_that_is_not_a_dataset(tmp_path):
    (tmp_path / "plain").mkdir()
    assert _error(tmp_path / "plain").startswith(
        f"{tmp_path / 'plain'}: is a directory but not one written by"
    )


def test_utf8_byte_order_mark_is_ignored(tmp_path):
    path = tmp_path / "d.jsonl"
    path.write_bytes('\ufeff{"text": "a"}\n'.encode())
    assert load_records(path) == [{"text": "a"}]
