//! The few protobuf messages a TensorBoard event file holds, hand-encoded: `Event`
//! (tensorflow/core/util/event.proto), `Summary` and `SummaryMetadata` (summary.proto) and the
//! string `TensorProto` (tensor.proto) of the text plugin. Only the fields written here exist.

/// Protobuf wire types.
const VARINT: u32 = 0;
const FIXED64: u32 = 1;
const LENGTH_DELIMITED: u32 = 2;
const FIXED32: u32 = 5;

/// `DataType.DT_STRING` in types.proto.
const DT_STRING: u64 = 7;

/// One `Summary.Value`.
#[derive(Debug, Clone, PartialEq)]
pub enum SummaryValue<'a> {
    /// `simple_value`: a point on a scalar chart.
    Scalar { tag: &'a str, value: f32 },
    /// A string tensor for the text plugin, rendered as Markdown.
    Text { tag: &'a str, markdown: &'a str },
}

/// The first event of every file: `Event { wall_time, file_version: "brain.Event:2" }`.
pub fn file_version_event(wall_time: f64) -> Vec<u8> {
    let mut event = Vec::new();
    put_double(&mut event, 1, wall_time);
    put_bytes(&mut event, 3, b"brain.Event:2");
    event
}

/// `Event { wall_time, step, summary: Summary { value: values } }`.
pub fn summary_event(wall_time: f64, step: i64, values: &[SummaryValue<'_>]) -> Vec<u8> {
    let mut summary = Vec::new();
    for value in values {
        put_bytes(&mut summary, 1, &summary_value(value));
    }
    let mut event = Vec::new();
    put_double(&mut event, 1, wall_time);
    if step != 0 {
        // proto3 leaves out fields at their default; int64 is a varint of the two's complement.
        put_varint_field(&mut event, 2, step as u64);
    }
    put_bytes(&mut event, 5, &summary);
    event
}

fn summary_value(value: &SummaryValue<'_>) -> Vec<u8> {
    let mut out = Vec::new();
    match value {
        SummaryValue::Scalar { tag, value } => {
            put_bytes(&mut out, 1, tag.as_bytes());
            put_float(&mut out, 2, *value);
        }
        SummaryValue::Text { tag, markdown } => {
            put_bytes(&mut out, 1, tag.as_bytes());
            // TensorProto { dtype: DT_STRING, tensor_shape: {} (a scalar), string_val: [markdown] }
            let mut tensor = Vec::new();
            put_varint_field(&mut tensor, 1, DT_STRING);
            put_bytes(&mut tensor, 2, &[]);
            put_bytes(&mut tensor, 8, markdown.as_bytes());
            put_bytes(&mut out, 8, &tensor);
            // SummaryMetadata { plugin_data: PluginData { plugin_name: "text" } }
            let mut plugin_data = Vec::new();
            put_bytes(&mut plugin_data, 1, b"text");
            let mut metadata = Vec::new();
            put_bytes(&mut metadata, 1, &plugin_data);
            put_bytes(&mut out, 9, &metadata);
        }
    }
    out
}

/// Base-128 varint, low groups first.
pub fn put_varint(out: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        out.push((value as u8 & 0x7F) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

fn put_key(out: &mut Vec<u8>, field: u32, wire_type: u32) {
    put_varint(out, u64::from(field << 3 | wire_type));
}

fn put_varint_field(out: &mut Vec<u8>, field: u32, value: u64) {
    put_key(out, field, VARINT);
    put_varint(out, value);
}

fn put_double(out: &mut Vec<u8>, field: u32, value: f64) {
    put_key(out, field, FIXED64);
    out.extend_from_slice(&value.to_le_bytes());
}

fn put_float(out: &mut Vec<u8>, field: u32, value: f32) {
    put_key(out, field, FIXED32);
    out.extend_from_slice(&value.to_le_bytes());
}

/// A string, bytes or embedded message: length, then the bytes.
fn put_bytes(out: &mut Vec<u8>, field: u32, bytes: &[u8]) {
    put_key(out, field, LENGTH_DELIMITED);
    put_varint(out, bytes.len() as u64);
    out.extend_from_slice(bytes);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn varint(value: u64) -> Vec<u8> {
        let mut out = Vec::new();
        put_varint(&mut out, value);
        out
    }

    #[test]
    fn varints_match_the_protobuf_encoding_guide() {
        assert_eq!(varint(0), [0x00]);
        assert_eq!(varint(1), [0x01]);
        assert_eq!(varint(150), [0x96, 0x01]);
        assert_eq!(varint(300), [0xAC, 0x02]);
        assert_eq!(varint(u64::MAX), [0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x01]);
        // int64 -1 is ten bytes, as in protobuf.
        assert_eq!(varint(-1i64 as u64).len(), 10);
    }

    // The expected bytes below were produced with TensorBoard's own generated protobuf classes
    // (pip install tensorboard):
    //
    //   from tensorboard.compat.proto import event_pb2, summary_pb2, tensor_pb2
    //   e = event_pb2.Event(wall_time=1.5, file_version="brain.Event:2")
    //   print(e.SerializeToString().hex())
    //   e = event_pb2.Event(wall_time=1.5, step=300)
    //   e.summary.value.add(tag="train/loss", simple_value=0.25)
    //   print(e.SerializeToString().hex())
    //   e = event_pb2.Event(wall_time=1.5, step=0)
    //   v = e.summary.value.add(tag="config")
    //   v.metadata.plugin_data.plugin_name = "text"
    //   v.tensor.dtype = 7; v.tensor.tensor_shape.SetInParent(); v.tensor.string_val.append(b"# hi")
    //   print(e.SerializeToString().hex())

    fn hex(bytes: &[u8]) -> String {
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }

    #[test]
    fn the_file_version_event_matches_protobuf() {
        assert_eq!(hex(&file_version_event(1.5)), "09000000000000f83f1a0d627261696e2e4576656e743a32");
    }

    #[test]
    fn a_scalar_event_matches_protobuf() {
        let values = [SummaryValue::Scalar { tag: "train/loss", value: 0.25 }];
        assert_eq!(
            hex(&summary_event(1.5, 300, &values)),
            "09000000000000f83f10ac022a130a110a0a747261696e2f6c6f7373150000803e"
        );
    }

    #[test]
    fn a_text_event_matches_protobuf() {
        let values = [SummaryValue::Text { tag: "config", markdown: "# hi" }];
        assert_eq!(
            hex(&summary_event(1.5, 0, &values)),
            "09000000000000f83f2a200a1e0a06636f6e666967420a080712004204232068694a080a060a0474657874"
        );
    }
}
