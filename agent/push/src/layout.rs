//! How a file is cut into the parts of a multipart upload.

/// S3's smallest part (all but the last).
pub const MIN_PART: u64 = 5 << 20;
/// S3's largest part.
pub const MAX_PART: u64 = 5 << 30;
/// S3's most parts per upload.
pub const MAX_PARTS: u64 = 10_000;
/// S3's largest object.
pub const MAX_OBJECT: u64 = 5 << 40;

/// The parts of a file: `count` parts of `part_size` bytes, the last one shorter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Layout {
    pub size: u64,
    pub part_size: u64,
    pub count: u64,
}

impl Layout {
    /// The layout of a file of `size` bytes with parts of about `wanted` bytes: `wanted`
    /// clamped to S3's limits and grown (in whole MiB) until 10,000 parts are enough. A file
    /// no larger than one part is one part (a single PUT).
    pub fn new(size: u64, wanted: u64) -> Result<Layout, String> {
        if size > MAX_OBJECT {
            return Err(format!(
                "{size} bytes is more than S3's largest object (5 TiB)"
            ));
        }
        let mut part_size = wanted.clamp(MIN_PART, MAX_PART);
        let needed = size.div_ceil(MAX_PARTS);
        if needed > part_size {
            part_size = needed.div_ceil(1 << 20) << 20;
        }
        let count = if size == 0 {
            1
        } else {
            size.div_ceil(part_size)
        };
        Ok(Layout {
            size,
            part_size,
            count,
        })
    }

    /// True if the file goes in one PUT rather than a multipart upload.
    pub fn single(&self) -> bool {
        self.count == 1
    }

    /// Offset and length of part `index` (0-based).
    pub fn part(&self, index: u64) -> (u64, u64) {
        let offset = index * self.part_size;
        (offset, self.part_size.min(self.size - offset))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_files_are_one_part() {
        let l = Layout::new(0, 16 << 20).unwrap();
        assert!(l.single());
        assert_eq!(l.part(0), (0, 0));
        let l = Layout::new(16 << 20, 16 << 20).unwrap();
        assert!(l.single());
    }

    #[test]
    fn parts_cover_the_file() {
        let size = 200_000_000;
        let l = Layout::new(size, 16 << 20).unwrap();
        assert_eq!(l.count, 12);
        let total: u64 = (0..l.count).map(|i| l.part(i).1).sum();
        assert_eq!(total, size);
        assert_eq!(l.part(11), (11 * (16 << 20), size - 11 * (16 << 20)));
    }

    #[test]
    fn limits() {
        assert_eq!(Layout::new(100 << 20, 1).unwrap().part_size, MIN_PART);
        let huge = Layout::new(1 << 40, 16 << 20).unwrap();
        assert!(huge.count <= MAX_PARTS);
        assert_eq!(huge.part_size % (1 << 20), 0);
        assert!(Layout::new(MAX_OBJECT + 1, 16 << 20).is_err());
        let max = Layout::new(MAX_OBJECT, 16 << 20).unwrap();
        assert!(max.count <= MAX_PARTS && max.part_size <= MAX_PART);
    }
}
