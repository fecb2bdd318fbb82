"""Format definitions: parsing, naming, validation, derived properties."""

import subprocess
import sys

import numpy as np
import pytest

from paretofab.cli import main
from quant.formats import FormatError, IntFormat, MinifloatFormat, all_formats, parse_format
from quant.reference import values

BAD = ["e0m3", "int1", "fp8", "int9", "uint1", "e4m4", "e8m0", "e9m0", "e1m0ieee", "e1m1ieee",
       "", "int", "e4m", "float8", "e4m3nosat", "e3m2xyz"]


@pytest.mark.parametrize("name", ["e2m3", "int4", "uint8", "e4m3ocp", "e5m2ieee", "int8n", "uint3n",
                                  "e4m3b11", "e3m2nosub", "e4m3ocpnosat", "e2m1", "e7m0", "e1m6"])
def test_parse_str_round_trip(name):
    fmt = parse_format(name)
    assert str(fmt) == name
    assert parse_format(str(fmt)) == fmt
    assert hash(parse_format(name)) == hash(fmt)


def test_every_supported_format_round_trips_and_is_frozen():
    fmts = all_formats()
    # every int 2..8 (3 variants) and every ExMy of 3..8 bits with e >= 1
    n_minifloats = sum(total - 1 for total in range(3, 9))
    assert len({f for f in fmts if isinstance(f, IntFormat)}) == 7 * 3
    assert len({f for f in fmts if isinstance(f, MinifloatFormat) and f.specials == "none"}) == n_minifloats
    for f in fmts:
        assert parse_format(str(f)) == f
        with pytest.raises(AttributeError):
            f.bits = 3  # frozen


@pytest.mark.parametrize("name", BAD)
def test_bad_formats_raise_format_error_listing_spellings(name):
    with pytest.raises(FormatError) as e:
        parse_format(name)
    assert "Valid formats" in str(e.value) and "e4m3ocp" in str(e.value)


def test_bad_constructor_arguments():
    with pytest.raises(FormatError):
        MinifloatFormat(0, 3)
    with pytest.raises(FormatError):
        MinifloatFormat(4, 4)
    with pytest.raises(FormatError):
        MinifloatFormat(2, 1, specials="ieee", bias=300)
    with pytest.raises(FormatError):
        IntFormat(9)
    with pytest.raises(FormatError):
        MinifloatFormat(3, 2, specials="weird")


@pytest.mark.parametrize("fmt", all_formats(), ids=str)
def test_properties_match_grid(fmt):
    grid = values(fmt)
    assert np.all(np.diff(grid) > 0)
    assert len(grid) == fmt.num_values
    assert grid.max() == fmt.max_value
    pos = grid[grid > 0]
    assert pos.min() == fmt.min_subnormal


def test_known_values():
    # OCP FP8 and MX FP6/FP4 figures from the OCP specs
    assert parse_format("e4m3ocp").max_value == 448
    assert parse_format("e5m2ieee").max_value == 57344
    assert parse_format("e2m1").max_value == 6
    assert parse_format("e2m3").max_value == 7.5
    assert parse_format("e3m2").max_value == 28
    assert parse_format("e4m3").max_value == 480  # no specials: S.1111.111 is finite
    assert parse_format("int8n").min_int == -127
    assert parse_format("uint8").max_int == 255


def test_cli_table_and_json(capsys):
    assert main(["formats", "e4m3ocp", "int4"]) == 0
    out = capsys.readouterr().out
    assert "e4m3ocp" in out and "448" in out
    assert main(["formats", "--json", "e2m1"]) == 0
    import json

    (row,) = json.loads(capsys.readouterr().out)
    assert row == {"name": "e2m1", "kind": "minifloat", "bits": 4, "max": 6.0, "min_normal": 1.0,
                   "min_subnormal": 0.5, "finite_values": 15}


def test_cli_bad_format_one_line_exit_2():
    r = subprocess.run([sys.executable, "-m", "paretofab.cli", "formats", "fp8"], capture_output=True, text=True)
    assert r.returncode == 2
    assert "Traceback" not in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1
    assert "unknown format 'fp8'" in r.stderr
