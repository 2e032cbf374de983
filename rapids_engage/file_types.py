"""Column types of the parquet files of one input, checked from their footers before any read.

Every file is read into the first input file's column types (the frame's meta), whatever the partitioning: a merged
partition's files in one read (:mod:`.grouped_read`), a file per partition (or split) cast to the meta. A file whose
type widens to it (int32 into int64, float32 into float64, a column all null; int64 into float64 where the file's
statistics bound its values within 2**53, as a day written as int64 where the others are float64) is read into it
exactly; any other (fractions into an integer, text into a number, times into integers) is refused, naming the file,
the column and both types: a cast would change or lose values without a word, and a file per partition read them in
its own type (a partition of floats or text where the frame says int64).
"""

from __future__ import annotations

from typing import Any, Sequence

from .data import DataError


def widens(got: Any, want: Any) -> bool:
    """Whether every value of arrow type ``got`` is held exactly by arrow type ``want``."""
    import pyarrow.types as t

    if got.equals(want) or t.is_null(got):
        return True
    if t.is_dictionary(got) or t.is_dictionary(want):
        return widens(got.value_type if t.is_dictionary(got) else got, want.value_type if t.is_dictionary(want) else want)
    if t.is_integer(got) and t.is_integer(want):
        if t.is_signed_integer(got):
            return t.is_signed_integer(want) and got.bit_width <= want.bit_width
        return got.bit_width < want.bit_width or (t.is_unsigned_integer(want) and got.bit_width == want.bit_width)
    if t.is_floating(want) and (t.is_floating(got) or t.is_integer(got)):
        digits = {16: 11, 32: 24, 64: 53}[want.bit_width]  # an integer type whose every value the mantissa holds
        return got.bit_width <= want.bit_width if t.is_floating(got) else got.bit_width < digits
    text = (t.is_string, t.is_large_string, getattr(t, "is_string_view", lambda _: False))
    if any(f(got) for f in text) and any(f(want) for f in text):
        return True
    if t.is_timestamp(got) and t.is_timestamp(want):
        units = ["s", "ms", "us", "ns"]
        return got.tz == want.tz and units.index(got.unit) <= units.index(want.unit)
    return t.is_date32(got) and t.is_date64(want)


def held_exactly(footer: Any, column: str, got: Any, want: Any) -> bool:
    """Whether the integer ``column`` (arrow type ``got``) of ``footer``'s file is held exactly by floating type
    ``want``: its statistics bound every row group's values within the mantissa (2**53 for float64); False where
    they cannot tell (no statistics, only nulls)."""
    import pyarrow.types as t

    from .footers import int_bounds

    if not (t.is_integer(got) and t.is_floating(want)):
        return False
    limit = 2 ** {16: 11, 32: 24, 64: 53}[want.bit_width]
    bounds = int_bounds(footer, column)
    return bounds is not None and all(-limit <= low and high <= limit for low, high in bounds)


def file_types(footer: Any, columns: Sequence[str]) -> dict[str, Any]:
    """The arrow field of each of ``columns`` in ``footer``'s file (those it has)."""
    schema = footer.metadata.schema.to_arrow_schema()
    return {c: schema.field(c) for c in columns if c in schema.names}


def check_types(footers: Sequence[Any], columns: Sequence[str]) -> bool:
    """A :class:`.data.DataError` naming the first file of ``footers`` holding one of ``columns`` in a type that does
    not widen to the first file's (:func:`widens`); else whether every file's fields (types and nullability) are
    the first's (one read of a list of them: cudf's reader refuses files of other schemas)."""
    first = file_types(footers[0], columns)
    same = True
    for footer in footers[1:]:
        for column, field in file_types(footer, columns).items():
            want = first[column]
            if field.equals(want):
                continue
            if not widens(field.type, want.type) and not held_exactly(footer, column, field.type, want.type):
                raise _refused(footers, column, footer, field.type, want.type)
            same = False
    return same


def check_files(footers: Sequence[Any], columns: Sequence[str]) -> bool:
    """A :class:`.data.DataError` naming the first file of ``footers`` lacking one of ``columns`` the first file has,
    then the first holding one in a type that does not widen to the first file's (:func:`check_types`); else whether
    every file's fields are the first's (False: some partitions are cast to the frame's meta)."""
    present = [c for c in columns if c in footers[0].names]  # not a key=value directory's column
    for footer in footers[1:]:
        if missing := [c for c in present if c not in footer.names]:
            raise DataError(f"{footer.path}: missing column(s) {missing}, which {footers[0].path} has")
    return check_types(footers, present)


def _refused(footers: Sequence[Any], column: str, footer: Any, got: Any, want: Any) -> DataError:
    """The error of ``footer``'s ``column`` of type ``got``, which the first file's ``want`` cannot hold; where every
    other file has ``got``, it names the first file as the odd one (naming the second sent the user to a good file)."""
    first = footers[0].path
    rest = [f for f in footers[1:] if column in f.names]
    if len(rest) > 1 and all(file_types(f, [column])[column].type.equals(got) for f in rest):
        return DataError(f"{first}: column {column!r} is {want}, but the {len(rest)} other files have it as {got} "
                         "(every file is read into the first file's types): write the files with one type")
    return DataError(f"{footer.path}: column {column!r} is {got}, but {first} has it as {want}: a cast would change "
                     "or lose its values; write the files with one type")
