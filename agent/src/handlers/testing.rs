//! A fake channel for handler unit tests: records every command a handler sends, exports
//! objects and streams in memory, never blocks.

use std::sync::{Arc, Mutex};

use super::{Exported, Remote};
use crate::javaser::Registry;
use crate::streams::{Pipe, Streams};

/// Commands sent, in order, and the exports made.
#[derive(Default)]
pub struct Recorded {
    /// Encoded commands.
    pub commands: Vec<Vec<u8>>,
    /// Exported objects by oid.
    pub objects: Vec<(i32, Arc<dyn Exported>)>,
    /// Released controller streams.
    pub released: Vec<i32>,
}

/// A [`Remote`] that records.
pub struct FakeRemote {
    registry: Registry,
    streams: Streams,
    /// What happened.
    pub log: Arc<Mutex<Recorded>>,
}

impl Default for FakeRemote {
    fn default() -> Self {
        FakeRemote {
            registry: super::classes::registry(),
            streams: Streams::new(false),
            log: Arc::default(),
        }
    }
}

impl FakeRemote {
    /// The class names of the commands sent so far.
    pub fn sent_classes(&self) -> Vec<String> {
        let log = self.log.lock().unwrap();
        log.commands
            .iter()
            .map(|c| {
                let s = crate::javaser::decode(c, &crate::remoting::command::decode_options())
                    .expect("a command the agent sent decodes");
                match s.items.first() {
                    Some(crate::javaser::Item::Value(crate::javaser::Value::Ref(id))) => s
                        .heap
                        .class_name(*id)
                        .map(|n| n.to_string())
                        .unwrap_or_default(),
                    _ => String::new(),
                }
            })
            .collect()
    }

    /// The bytes of every `ProxyOutputStream$Chunk` sent to stream `oid`, concatenated.
    pub fn chunks_to(&self, oid: i32) -> Vec<u8> {
        let log = self.log.lock().unwrap();
        let mut out = Vec::new();
        for c in &log.commands {
            let s = crate::javaser::decode(c, &crate::remoting::command::decode_options()).unwrap();
            let Some(crate::javaser::Item::Value(crate::javaser::Value::Ref(id))) = s.items.first()
            else {
                continue;
            };
            if !s
                .heap
                .class_name(*id)
                .is_some_and(|n| n.eq_str(crate::remoting::classes::STREAM_CHUNK))
            {
                continue;
            }
            if s.heap.field(*id, "oid") != Some(&crate::javaser::Value::Int(oid)) {
                continue;
            }
            if let Some(crate::javaser::Value::Ref(a)) = s.heap.field(*id, "buf") {
                if let Some(crate::javaser::ArrayData::Byte(b)) = s.heap.array(*a).map(|a| &a.data)
                {
                    out.extend_from_slice(b);
                }
            }
        }
        out
    }
}

impl Remote for FakeRemote {
    fn registry(&self) -> &Registry {
        &self.registry
    }
    fn next_io_id(&self) -> i32 {
        self.streams.next_io_id()
    }
    fn note_io(&self, _: i32) {}
    fn is_cancelled(&self) -> bool {
        false
    }
    fn send(&self, command: Vec<u8>) -> Result<(), String> {
        self.log.lock().unwrap().commands.push(command);
        Ok(())
    }
    fn export(&self, sink: std::fs::File) -> i32 {
        self.streams.export_file(sink)
    }
    fn export_pipe(&self) -> Arc<Pipe> {
        self.streams.export_pipe()
    }
    fn export_input(&self, source: Box<dyn std::io::Read + Send>) -> i32 {
        self.streams.export_input(source)
    }
    fn export_object(&self, object: Arc<dyn Exported>) -> i32 {
        let oid = self.streams.new_oid();
        self.log.lock().unwrap().objects.push((oid, object));
        oid
    }
    fn object(&self, oid: i32) -> Option<Arc<dyn Exported>> {
        let log = self.log.lock().unwrap();
        log.objects
            .iter()
            .find(|(o, _)| *o == oid)
            .map(|(_, x)| x.clone())
    }
    fn unexport(&self, oid: i32) {
        self.streams.unexport(oid)
    }
    fn reserve(&self, _: i32, _: usize) -> Result<(), String> {
        Ok(())
    }
    fn release(&self, oid: i32) {
        self.log.lock().unwrap().released.push(oid);
    }
    fn is_released(&self, oid: i32) -> bool {
        self.log.lock().unwrap().released.contains(&oid)
    }
    fn read_input(&self, _: i32, _: i32) -> Result<Option<Vec<u8>>, String> {
        Err("the fake channel has no controller streams".into())
    }
    fn detach(&self) -> Arc<dyn Remote> {
        Arc::new(FakeRemote {
            registry: self.registry.clone(),
            streams: Streams::new(false),
            log: self.log.clone(),
        })
    }
}
