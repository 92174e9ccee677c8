"""The bundled data sets: shapes, dtypes, and values read by eye from the original files.

The expected numbers below are copied from the CSV files as statsmodels and scikit-learn ship
them (and from UCI's published class counts), not computed by the loaders.
"""

import hashlib
import importlib
import re
import sys
import zipfile
from importlib import resources

import numpy as np
import pytest

from pyrnn import datasets
from pyrnn.datasets import Series

SERIES_LOADERS = {
    "sunspots": datasets.load_sunspots,
    "co2": datasets.load_co2,
    "nile": datasets.load_nile,
    "elnino": datasets.load_elnino,
}


def data_dir():
    return resources.files("pyrnn.datasets") / "data"


def check_series(s, length, frequency, period, time_dtype):
    assert isinstance(s, Series)
    assert len(s) == length
    assert s.values.shape == s.time.shape == (length,)
    assert s.values.dtype == np.float64 and s.time.dtype == time_dtype
    assert (s.frequency, s.period) == (frequency, period)
    assert not np.isnan(s.values).any()
    assert np.all(np.diff(s.time) > 0)
    assert s.source and s.license == "public domain"


def test_sunspots():
    s = datasets.load_sunspots()
    check_series(s, 309, "yearly", 1, np.int64)
    assert (s.time[0], s.values[0]) == (1700, 5.0)      # "1700,5"
    assert (s.time[1], s.values[1]) == (1701, 11.0)     # "1701,11"
    assert (s.time[-2], s.values[-2]) == (2007, 7.5)    # "2007,7.5"
    assert (s.time[-1], s.values[-1]) == (2008, 2.9)    # "2008,2.9"
    assert np.array_equal(s.time, np.arange(1700, 2009))
    assert s.values.min() >= 0


def test_nile():
    s = datasets.load_nile()
    check_series(s, 100, "yearly", 1, np.int64)
    assert (s.time[0], s.values[0]) == (1871, 1120.0)
    assert (s.time[2], s.values[2]) == (1873, 963.0)
    assert (s.time[-1], s.values[-1]) == (1970, 740.0)
    assert np.array_equal(s.time, np.arange(1871, 1971))


def test_elnino_is_the_table_read_in_time_order():
    s = datasets.load_elnino()
    check_series(s, 61 * 12, "monthly", 12, np.float64)
    assert s.values[0] == 23.11 and s.time[0] == 1950.0           # January 1950
    assert s.values[1] == 24.20 and s.time[1] == pytest.approx(1950 + 1 / 12)
    assert s.values[11] == 21.80                                   # December 1950
    assert s.values[12] == 24.19 and s.time[12] == pytest.approx(1951.0)  # January 1951
    assert s.values[-1] == 22.07 and s.time[-1] == pytest.approx(2010 + 11 / 12)
    assert 15 < s.values.min() and s.values.max() < 30             # degrees Celsius near the equator


def test_co2_weekly_fills_missing_weeks_linearly():
    s = datasets.load_co2()
    check_series(s, 2284, "weekly", 52, np.float64)
    assert s.values[0] == 316.1 and s.time[0] == pytest.approx(1958 + 87 / 365)   # 1958-03-29
    assert s.values[-1] == 371.5 and s.time[-1] == pytest.approx(2001 + 362 / 365)  # 2001-12-29
    assert np.diff(s.time) * 365.25 == pytest.approx(7, abs=0.02)  # 7 days, in 365- or 366-day years
    # 1958-05-10 is empty, between 05-03 (316.9) and 05-17 (317.5)
    assert s.values[6] == pytest.approx((316.9 + 317.5) / 2)
    # five empty weeks 05-31..06-28 between 05-24 (317.9) and 07-05 (315.8): steps of -2.1 / 6
    assert s.values[8:15] == pytest.approx([317.9, 317.55, 317.2, 316.85, 316.5, 316.15, 315.8])


def test_co2_monthly_averages_the_weeks_of_each_month():
    s = datasets.load_co2(freq="monthly")
    check_series(s, 10 + 43 * 12, "monthly", 12, np.float64)   # March 1958 .. December 2001
    assert s.time[0] == pytest.approx(1958 + 2 / 12) and s.time[-1] == pytest.approx(2001 + 11 / 12)
    assert np.diff(s.time) == pytest.approx(1 / 12)
    assert s.values[0] == pytest.approx(316.1)                                          # 1 week
    assert s.values[2] == pytest.approx((316.9 + 317.2 + 317.5 + 317.9 + 317.55) / 5)  # May 1958, 2 filled
    assert s.values[4] == pytest.approx((315.8 + 315.8 + 315.4 + 315.5) / 4)            # July 1958
    assert s.values[10] == pytest.approx((315.2 + 315.5 + 315.6 + 315.8 + 315.4) / 5)   # January 1959
    assert s.values[-1] == pytest.approx((370.3 + 370.8 + 371.2 + 371.3 + 371.5) / 5)   # December 2001


def test_digits():
    images, labels = datasets.load_digits()
    assert images.shape == (1797, 8, 8) and images.dtype == np.float64
    assert labels.shape == (1797,) and labels.dtype == np.int64
    assert images.min() == 0 and images.max() == 16
    assert np.array_equal(images, np.round(images))
    # UCI's class distribution of optdigits.tes
    assert np.bincount(labels).tolist() == [178, 182, 177, 183, 181, 182, 181, 179, 174, 180]
    # the first row of the file: "0,0,5,13,9,1,0,0,0,0,13,15,10,15,5,0,...,0,0,6,13,10,0,0,0,0"
    assert labels[0] == 0 and labels[-1] == 8
    assert images[0, 0].tolist() == [0, 0, 5, 13, 9, 1, 0, 0]
    assert images[0, 1].tolist() == [0, 0, 13, 15, 10, 15, 5, 0]
    assert images[0, 7].tolist() == [0, 0, 6, 13, 10, 0, 0, 0]


def test_digits_as_sequences():
    x, labels = datasets.load_digits(as_sequences=True)
    images, labels_again = datasets.load_digits()
    assert x.shape == (1797, 8, 8) and x.dtype == np.float32   # (N, T = rows, C = columns)
    assert x.min() == 0 and x.max() == 1
    assert np.array_equal(x, (images / 16).astype(np.float32))
    assert np.array_equal(labels, labels_again)


def test_texts_are_ascii():
    g = datasets.load_text()
    assert g == datasets.load_text("gettysburg")
    assert g.isascii() and g.startswith("Four score and seven years ago our fathers brought forth on this continent,")
    assert g.endswith("government of the people, by the people, for the people, shall not perish from the earth.\n")
    assert g.count("\n\n") == 2 and "under God" in g
    p = datasets.load_text("preamble")
    assert p.isascii() and p.startswith("We the People of the United States, in Order to form a more perfect Union,")
    assert p.endswith("for the United States of America.\n") and len(p.split()) == 52


def test_every_call_returns_fresh_arrays():
    for load in SERIES_LOADERS.values():
        first = load()
        v, t = first.values.copy(), first.time.copy()
        first.values[:] = -1
        first.time[:] = 0
        again = load()
        assert np.array_equal(again.values, v) and np.array_equal(again.time, t)
    images, labels = datasets.load_digits()
    images[:] = -1
    labels[:] = -1
    images, labels = datasets.load_digits()
    assert images.min() == 0 and labels.min() == 0


def test_list_datasets_names_something_that_loads():
    listing = datasets.list_datasets()
    assert set(listing) == set(SERIES_LOADERS) | {"digits", "gettysburg", "preamble"}
    assert all(isinstance(d, str) and d and "\n" not in d for d in listing.values())
    listing.clear()                                   # a copy: the next call is whole again
    assert len(datasets.list_datasets()) == 7
    for name, load in SERIES_LOADERS.items():
        assert load().name == name


def test_bad_arguments_say_what_was_expected():
    with pytest.raises(ValueError, match=r"name: expected one of \['gettysburg', 'preamble'\], got 'hamlet'"):
        datasets.load_text("hamlet")
    with pytest.raises(ValueError, match=r"freq: expected 'weekly' or 'monthly', got 'daily'"):
        datasets.load_co2(freq="daily")
    with pytest.raises(TypeError, match=r"as_sequences: expected a bool, got str"):
        datasets.load_digits(as_sequences="yes")


def test_series_checks_its_fields():
    v, t = np.array([1.0, 2.0]), np.array([2000, 2001])
    Series(v, t, "x", "yearly", 1, "u", "s", "l")
    with pytest.raises(ValueError, match=r"period: expected 12 for a monthly series, got 1"):
        Series(v, t, "x", "monthly", 1, "u", "s", "l")
    with pytest.raises(ValueError, match=r"frequency: expected one of"):
        Series(v, t, "x", "daily", 1, "u", "s", "l")
    with pytest.raises(ValueError, match=r"time: expected shape \(2,\)"):
        Series(v, t[:1], "x", "yearly", 1, "u", "s", "l")
    with pytest.raises(ValueError, match=r"values: expected finite numbers, got 1 NaN"):
        Series(np.array([1.0, np.nan]), t, "x", "yearly", 1, "u", "s", "l")
    with pytest.raises(ValueError, match=r"time: expected strictly increasing"):
        Series(v, t[::-1], "x", "yearly", 1, "u", "s", "l")


def test_sources_md_names_every_file_with_its_checksum():
    text = (data_dir() / "SOURCES.md").read_text(encoding="utf-8")
    sections = dict(re.findall(r"^## (\S+)\n(.*?)(?=^## |\Z)", text, flags=re.M | re.S))
    shipped = {f.name for f in data_dir().iterdir() if f.is_file()}
    assert set(sections) == shipped
    for name in shipped - {"SOURCES.md"}:
        assert "Licence:" in sections[name], name
        digest = re.search(r"SHA-256: `([0-9a-f]{64})`", sections[name]).group(1)
        assert hashlib.sha256((data_dir() / name).read_bytes()).hexdigest() == digest, name


def test_loads_from_a_zip_archive(tmp_path, monkeypatch):
    """importlib.resources, not file paths: the loaders work from a zipped copy of the package."""
    archive = tmp_path / "zipped.zip"
    package = resources.files("pyrnn.datasets")
    with zipfile.ZipFile(archive, "w") as z:
        z.writestr("zipped_datasets/__init__.py", (package / "__init__.py").read_bytes())
        for f in data_dir().iterdir():
            z.writestr(f"zipped_datasets/data/{f.name}", f.read_bytes())
    monkeypatch.syspath_prepend(str(archive))
    try:
        zipped = importlib.import_module("zipped_datasets")
        assert zipped.__file__.startswith(str(archive))
        assert np.array_equal(zipped.load_nile().values, datasets.load_nile().values)
        assert zipped.load_text("preamble") == datasets.load_text("preamble")
        assert zipped.load_digits()[0].shape == (1797, 8, 8)
    finally:
        sys.modules.pop("zipped_datasets", None)
