//! Checked cells and the Arrow column builders they go into. The per-value functions here and in
//! `convert` are `#[inline]`: they run for every cell, and a module of their own is a codegen unit
//! of its own, across which they would not be inlined otherwise.

use std::borrow::Cow;
use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, ArrowPrimitiveType, BinaryBuilder, BooleanBuilder, Float64Builder,
    Int64Builder, ListBuilder, PrimitiveBuilder, StringBuilder, TimestampMicrosecondBuilder,
};
use omnistream_streams::FieldType;

/// One checked cell, before it goes into a builder.
#[derive(Debug)]
pub(super) enum Cell<'a> {
    Null,
    Str(Cow<'a, str>),
    I64(i64),
    F64(f64),
    Bool(bool),
    Ts(i64),
    List(Vec<Option<Cow<'a, str>>>),
}

pub(super) enum Column {
    Utf8(StringBuilder),
    Int64(Int64Builder),
    Float64(Float64Builder),
    Boolean(BooleanBuilder),
    Timestamp(TimestampMicrosecondBuilder),
    List(ListBuilder<StringBuilder>),
    Binary(BinaryBuilder),
}

impl Column {
    pub(super) fn new(ty: FieldType) -> Column {
        match ty {
            FieldType::Utf8 | FieldType::Json => Column::Utf8(StringBuilder::new()),
            FieldType::Int64 => Column::Int64(Int64Builder::new()),
            FieldType::Float64 => Column::Float64(Float64Builder::new()),
            FieldType::Boolean => Column::Boolean(BooleanBuilder::new()),
            FieldType::Timestamp => {
                Column::Timestamp(TimestampMicrosecondBuilder::new().with_timezone("UTC"))
            }
            FieldType::Utf8List => Column::List(ListBuilder::new(StringBuilder::new())),
            FieldType::Binary => Column::Binary(BinaryBuilder::new()),
        }
    }

    #[inline]
    pub(super) fn push(&mut self, cell: Cell) {
        match (self, cell) {
            (Column::Utf8(b), Cell::Str(s)) => b.append_value(s),
            (Column::Utf8(b), Cell::Null) => b.append_null(),
            (Column::Int64(b), Cell::I64(v)) => b.append_value(v),
            (Column::Int64(b), Cell::Null) => b.append_null(),
            (Column::Float64(b), Cell::F64(v)) => b.append_value(v),
            (Column::Float64(b), Cell::Null) => b.append_null(),
            (Column::Boolean(b), Cell::Bool(v)) => b.append_value(v),
            (Column::Boolean(b), Cell::Null) => b.append_null(),
            (Column::Timestamp(b), Cell::Ts(v)) => b.append_value(v),
            (Column::Timestamp(b), Cell::Null) => b.append_null(),
            (Column::List(b), Cell::List(items)) => {
                for item in items {
                    b.values().append_option(item);
                }
                b.append(true);
            }
            (Column::List(b), Cell::Null) => b.append_null(),
            (Column::Binary(b), Cell::Null) => b.append_null(),
            (_, cell) => unreachable!("cell {cell:?} does not fit its column: a decoder bug"),
        }
    }

    /// The column so far, and a fresh builder sized like it: batches of one input are alike, and
    /// a builder growing from empty copies its data about twice over on the way.
    pub(super) fn finish(&mut self) -> ArrayRef {
        match self {
            Column::Utf8(b) => {
                let a = b.finish();
                *b = StringBuilder::with_capacity(a.len(), a.value_data().len());
                Arc::new(a)
            }
            Column::Int64(b) => finish_primitive(b),
            Column::Float64(b) => finish_primitive(b),
            Column::Timestamp(b) => finish_primitive(b),
            Column::Boolean(b) => {
                let a = b.finish();
                *b = BooleanBuilder::with_capacity(a.len());
                Arc::new(a)
            }
            Column::List(b) => Arc::new(b.finish()),
            Column::Binary(b) => Arc::new(b.finish()),
        }
    }
}

/// A primitive column's values so far, and a fresh builder of the same type (time zone included)
/// sized like them.
pub(super) fn finish_primitive<T: ArrowPrimitiveType>(b: &mut PrimitiveBuilder<T>) -> ArrayRef {
    let a = b.finish();
    *b = PrimitiveBuilder::<T>::with_capacity(a.len()).with_data_type(a.data_type().clone());
    Arc::new(a)
}
