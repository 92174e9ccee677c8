"""Small real data sets shipped inside pyrnn: read from the installed package, nothing downloaded.

Legend: N = samples, T = time steps (observations of a series, or image rows), C = features.

Time series come as a :class:`Series` (``values`` and ``time`` as NumPy arrays plus their
metadata); the handwritten digits as ``(images, labels)``; the texts as one ``str``. Every call
reads the bundled file again and returns new arrays: nothing is cached, so changing one call's
result never changes the next. The files, their sources and licences are listed in
``pyrnn/datasets/data/SOURCES.md``.

Examples
--------
>>> from pyrnn import datasets
>>> s = datasets.load_nile()
>>> s.values.shape, int(s.time[0]), float(s.values[0])
((100,), 1871, 1120.0)
"""

from __future__ import annotations

import csv
import datetime
import gzip
import io
from dataclasses import dataclass
from importlib import resources

import numpy as np

__all__ = [
    "Series",
    "list_datasets",
    "load_co2",
    "load_digits",
    "load_elnino",
    "load_nile",
    "load_sunspots",
    "load_text",
    "make_digit_segmentation",
]

_PERIODS = {"yearly": 1, "monthly": 12, "weekly": 52}

_PUBLIC_DOMAIN = "public domain"

_DESCRIPTIONS = {
    "sunspots": "yearly sunspot numbers, 1700-2008 (309 values; NOAA NGDC via statsmodels)",
    "co2": "weekly CO2 at Mauna Loa in ppmv, 1958-03-29 to 2001-12-29 (2284 weeks, or 526 months; SIO via statsmodels)",
    "nile": "annual flow of the Nile at Aswan in 1e8 m^3, 1871-1970 (100 values; via statsmodels)",
    "elnino": "monthly sea surface temperature of the Nino 1+2 region in deg C, 1950-2010 (732 values; NOAA via statsmodels)",
    "digits": "1797 handwritten digits as 8x8 images of counts 0..16, labels 0..9 (UCI, CC BY 4.0, via scikit-learn)",
    "gettysburg": "text: Lincoln's Gettysburg Address, Bliss copy (public domain, ASCII, 1462 characters)",
    "preamble": "text: the Preamble of the US Constitution (public domain, ASCII, 328 characters)",
}

_TEXTS = {"gettysburg": "gettysburg.txt", "preamble": "preamble.txt"}


@dataclass(frozen=True, eq=False)
class Series:
    """One real time series and what is known about it.

    Attributes
    ----------
    values : ndarray of float64, shape (T,)
        The observations in time order; no NaN.
    time : ndarray, shape (T,)
        When each value was observed: int64 years for yearly series, float64 decimal years
        (``year + fraction of the year elapsed``; month m of a monthly series is
        ``year + (m - 1) / 12``) otherwise. Strictly increasing.
    name : str
        Short name, the one :func:`list_datasets` uses.
    frequency : {"yearly", "monthly", "weekly"}
        Spacing of the observations.
    period : int
        Calendar seasonal period in steps: 1 for yearly series (no season), 12 for monthly,
        52 for weekly (a year is 52.18 weeks, so a weekly season drifts by about one week in
        six years). It is the calendar's period, not one found in the data: the ~11-year
        sunspot cycle, for one, is not a calendar season.
    units : str
        Units of ``values``.
    source : str
        Where the numbers come from (see ``SOURCES.md`` for the full record).
    license : str
        The licence under which the data are shipped.
    """

    values: np.ndarray
    time: np.ndarray
    name: str
    frequency: str
    period: int
    units: str
    source: str
    license: str

    def __post_init__(self):
        if self.frequency not in _PERIODS:
            raise ValueError(f"frequency: expected one of {sorted(_PERIODS)}, got {self.frequency!r}")
        if self.period != _PERIODS[self.frequency]:
            raise ValueError(f"period: expected {_PERIODS[self.frequency]} for a {self.frequency} series, got {self.period}")
        if self.values.ndim != 1 or self.values.dtype != np.float64:
            raise ValueError(f"values: expected a 1-D float64 array, got {self.values.ndim}-D {self.values.dtype}")
        if self.time.shape != self.values.shape:
            raise ValueError(f"time: expected shape {self.values.shape} (that of values), got {self.time.shape}")
        if not np.all(np.isfinite(self.values)):
            raise ValueError(f"values: expected finite numbers, got {np.count_nonzero(~np.isfinite(self.values))} NaN or inf")
        if np.any(np.diff(self.time) <= 0):
            raise ValueError("time: expected strictly increasing times, got a step that does not increase")

    def __len__(self):
        return self.values.shape[0]

    def __repr__(self):
        return (
            f"Series(name={self.name!r}, frequency={self.frequency!r}, length={len(self)}, "
            f"time={self.time[0]}..{self.time[-1]}, units={self.units!r}, license={self.license!r})"
        )


def list_datasets():
    """The bundled data sets: ``{name: one-line description}``.

    ``sunspots``, ``co2``, ``nile``, ``elnino`` and ``digits`` load with ``load_<name>()``;
    the texts with ``load_text(name)``.
    """
    return dict(_DESCRIPTIONS)


# ---------------------------------------------------------------------------------- reading files


def _read_bytes(filename):
    return (resources.files(__name__) / "data" / filename).read_bytes()


def _read_csv(filename):
    """Header and rows (lists of strings) of a bundled CSV file."""
    rows = list(csv.reader(io.StringIO(_read_bytes(filename).decode("ascii"))))
    return rows[0], rows[1:]


def _decimal_year(yyyymmdd):
    """``20011229`` -> 2001 + (days since 1 January) / (days in 2001)."""
    day = datetime.datetime.strptime(yyyymmdd, "%Y%m%d").date()
    start = datetime.date(day.year, 1, 1)
    length = (datetime.date(day.year + 1, 1, 1) - start).days
    return day.year + (day - start).days / length


def _yearly(filename, name, units, source):
    _, rows = _read_csv(filename)
    years = np.array([int(r[0]) for r in rows], dtype=np.int64)
    values = np.array([float(r[1]) for r in rows], dtype=np.float64)
    return Series(values, years, name, "yearly", 1, units, source, _PUBLIC_DOMAIN)


# ---------------------------------------------------------------------------------- the loaders


def load_sunspots():
    """Yearly sunspot numbers, 1700-2008.

    The International Sunspot Number as published before its 2015 revision (2008: 2.9).

    Returns
    -------
    Series
        ``values`` (309,) float64, ``time`` (309,) int64 years 1700..2008, ``period`` 1. The
        ~11-year solar cycle is in the data, not in ``period`` (which is the calendar's).
        Public domain (NOAA National Geophysical Data Center, as shipped by statsmodels).
    """
    return _yearly("sunspots.csv", "sunspots", "sunspot number", "NOAA National Geophysical Data Center, via statsmodels")


def load_nile():
    """Annual flow of the Nile at Aswan, 1871-1970 (a known change point near 1898).

    Returns
    -------
    Series
        ``values`` (100,) float64 in 1e8 m^3, ``time`` (100,) int64 years 1871..1970. Public
        domain (Cobb 1978, as shipped by statsmodels).
    """
    return _yearly("nile.csv", "nile", "1e8 m^3", "Cobb (1978), Biometrika 65(2); via statsmodels")


def load_elnino():
    """Monthly mean sea surface temperature of the Nino 1+2 region (0-10S, 90-80W), 1950-2010.

    Returns
    -------
    Series
        ``values`` (732,) float64 in degrees Celsius, the file's 61 years x 12 months read in
        time order (January 1950, February 1950, ..., December 2010); ``time`` (732,) float64,
        month m of year y at ``y + (m - 1) / 12``; ``period`` 12. Public domain (NOAA NWS
        Climate Prediction Center, ERSST.v3b, as shipped by statsmodels).
    """
    _, rows = _read_csv("elnino.csv")
    years = np.array([int(r[0]) for r in rows], dtype=np.float64)
    grid = np.array([[float(v) for v in r[1:]] for r in rows], dtype=np.float64)  # (years, 12)
    time = (years[:, None] + np.arange(12) / 12.0).ravel()
    source = "NOAA NWS Climate Prediction Center, ERSST.v3b Nino 1+2; via statsmodels"
    return Series(grid.ravel(), time, "elnino", "monthly", 12, "degrees Celsius", source, _PUBLIC_DOMAIN)


def load_co2(freq="weekly"):
    """Atmospheric CO2 at Mauna Loa, weekly averages of continuous samples, March 1958 - December 2001.

    The file has one row per week (dates 7 days apart, 1958-03-29 to 2001-12-29); 59 of its 2284
    weeks have no measurement. Those are filled by linear interpolation in time between the
    nearest measured weeks on either side (the first and last weeks are measured, so no value is
    extrapolated); the longest gap is 18 weeks (25 January - 23 May 1964).

    Parameters
    ----------
    freq : {"weekly", "monthly"}
        ``"weekly"``: the 2284 weeks, ``time`` the decimal year of each week's date.
        ``"monthly"``: 526 months (March 1958 - December 2001), each the mean of the filled
        weekly values whose date falls in that month (4 or 5 weeks; March 1958 holds only one,
        29 March), ``time`` = ``year + (month - 1) / 12``.

    Returns
    -------
    Series
        ``values`` float64 in ppmv (mole fraction, 1999 SIO calibration scale), ``period`` 52
        (weekly) or 12 (monthly). Public domain (Scripps Institution of Oceanography via the
        US DOE's CDIAC, as shipped by statsmodels).
    """
    if freq not in ("weekly", "monthly"):
        raise ValueError(f"freq: expected 'weekly' or 'monthly', got {freq!r}")
    _, rows = _read_csv("co2.csv")
    dates = [r[0] for r in rows]
    time = np.array([_decimal_year(d) for d in dates], dtype=np.float64)
    values = np.array([float(r[1]) if r[1].strip() else np.nan for r in rows], dtype=np.float64)
    missing = np.isnan(values)
    values[missing] = np.interp(time[missing], time[~missing], values[~missing])
    source = "Scripps Institution of Oceanography (Keeling and Whorf 2004), via CDIAC and statsmodels"
    if freq == "weekly":
        return Series(values, time, "co2", "weekly", 52, "ppmv", source, _PUBLIC_DOMAIN)
    months = np.array([int(d[:4]) * 12 + int(d[4:6]) - 1 for d in dates], dtype=np.int64)  # weeks -> month index
    keys, which = np.unique(months, return_inverse=True)
    monthly = np.bincount(which, weights=values) / np.bincount(which)
    return Series(monthly, keys / 12.0, "co2", "monthly", 12, "ppmv", source, _PUBLIC_DOMAIN)


def load_digits(as_sequences=False):
    """The 1797 handwritten digits of the UCI "Optical Recognition of Handwritten Digits" test set.

    Each image counts, in 4x4 blocks of a 32x32 bitmap, the pixels that are on: integers 0..16.
    Licence CC BY 4.0 (E. Alpaydin and C. Kaynak, UCI Machine Learning Repository, 1998; the
    copy shipped by scikit-learn): credit them if you publish results.

    Parameters
    ----------
    as_sequences : bool
        ``False``: images as counts. ``True``: ready for a recurrent layer, each image a sequence
        of its 8 rows (T = 8 steps of C = 8 features), float32 divided by 16 into [0, 1].

    Returns
    -------
    images : ndarray, shape (N, 8, 8) = (1797, 8, 8)
        float64 in [0, 16] (``as_sequences=False``) or float32 in [0, 1] (``as_sequences=True``),
        ``images[n, r, c]`` the pixel at row r (top to bottom), column c.
    labels : ndarray of int64, shape (N,)
        The digit, 0..9.
    """
    if not isinstance(as_sequences, (bool, np.bool_)):
        raise TypeError(f"as_sequences: expected a bool, got {type(as_sequences).__name__}")
    text = gzip.decompress(_read_bytes("digits.csv.gz")).decode("ascii")
    table = np.loadtxt(io.StringIO(text), delimiter=",", dtype=np.int64, ndmin=2)  # (N, 64 pixels + label)
    images = table[:, :64].reshape(-1, 8, 8).astype(np.float64)
    labels = np.ascontiguousarray(table[:, 64])
    if as_sequences:
        return (images / 16.0).astype(np.float32), labels
    return images, labels


def load_text(name="gettysburg"):
    """A short public-domain English text, for character-level language models.

    Parameters
    ----------
    name : {"gettysburg", "preamble"}
        ``"gettysburg"``: Lincoln's Gettysburg Address, Bliss copy (1864), three paragraphs
        separated by blank lines, its dashes written ``--``. ``"preamble"``: the Preamble of the
        Constitution of the United States, as the National Archives transcribe it.

    Returns
    -------
    str
        The text, ASCII only, ending with a newline.
    """
    if not isinstance(name, str) or name not in _TEXTS:
        raise ValueError(f"name: expected one of {sorted(_TEXTS)}, got {name!r}")
    return _read_bytes(_TEXTS[name]).decode("ascii")



def __getattr__(name):
    """``make_digit_segmentation`` is built on the loaders above, in its own module (PEP 562)."""
    if name == "make_digit_segmentation":
        from .segmentation import make_digit_segmentation

        return make_digit_segmentation
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
