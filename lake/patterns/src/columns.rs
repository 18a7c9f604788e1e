//! Rows of the log's record batches read by column name (a topic's schema may gain columns, so
//! positions are never assumed).

use arrow::array::{
    Array, BooleanArray, Float64Array, Int64Array, ListArray, RecordBatch, StringArray,
    TimestampMicrosecondArray,
};

pub struct Rows<'a> {
    batch: &'a RecordBatch,
}

impl<'a> Rows<'a> {
    pub fn new(batch: &'a RecordBatch) -> Self {
        Rows { batch }
    }

    pub fn iter(&self) -> impl Iterator<Item = Row<'a>> + 'a {
        let batch = self.batch;
        (0..batch.num_rows()).map(move |row| Row { batch, row })
    }
}

/// One row of a batch.
#[derive(Clone, Copy)]
pub struct Row<'a> {
    batch: &'a RecordBatch,
    row: usize,
}

impl Row<'_> {
    fn col<T: 'static>(&self, name: &str) -> Option<&T> {
        let c = self.batch.column_by_name(name)?;
        c.is_valid(self.row).then_some(())?;
        c.as_any().downcast_ref::<T>()
    }

    pub fn str(&self, name: &str) -> Option<String> {
        self.col::<StringArray>(name)
            .map(|a| a.value(self.row).to_string())
    }

    pub fn f64(&self, name: &str) -> Option<f64> {
        self.col::<Float64Array>(name).map(|a| a.value(self.row))
    }

    pub fn i64(&self, name: &str) -> Option<i64> {
        self.col::<Int64Array>(name).map(|a| a.value(self.row))
    }

    pub fn bool(&self, name: &str) -> Option<bool> {
        self.col::<BooleanArray>(name).map(|a| a.value(self.row))
    }

    pub fn timestamp(&self, name: &str) -> Option<i64> {
        self.col::<TimestampMicrosecondArray>(name)
            .map(|a| a.value(self.row))
    }

    pub fn list(&self, name: &str) -> Vec<String> {
        let Some(a) = self.col::<ListArray>(name) else {
            return Vec::new();
        };
        let values = a.value(self.row);
        values
            .as_any()
            .downcast_ref::<StringArray>()
            .map(|v| v.iter().flatten().map(str::to_string).collect())
            .unwrap_or_default()
    }
}
