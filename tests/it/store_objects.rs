//! The object port's conformance suite: every case runs on a local directory and on Garage S3.

use bytes::Bytes;
use ferry::config::Settings;
use ferry::storage::Objects;
use ferry::storage::objects::ObjectError;
use sha2::{Digest, Sha256};

use crate::support::{Obj, Sql, test_env};

async fn open(obj: Obj) -> (Objects, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let env = test_env(dir.path(), Sql::Sqlite, obj).await;
    let settings = Settings::load(None, env).unwrap();
    let objects = Objects::open(settings.object_target()).unwrap();
    (objects, dir)
}

backend_tests!(local => crate::support::Obj::Local, s3 => crate::support::Obj::S3;
[
    put_get_overwrite_and_ranges,
    missing_objects_and_bad_keys,
    list_and_delete,
    large_stream_upload_is_byte_identical,
    concurrent_writers
]);

async fn put_get_overwrite_and_ranges(obj: Obj) {
    let (o, _d) = open(obj).await;
    assert_eq!(o.kind(), if obj == Obj::S3 { "s3" } else { "local" });
    o.ping().await.unwrap();
    o.put("studies/a/b.dcm", Bytes::from_static(b"hello ferry")).await.unwrap();
    assert_eq!(o.get("studies/a/b.dcm").await.unwrap(), Bytes::from_static(b"hello ferry"));
    assert_eq!(o.size("studies/a/b.dcm").await.unwrap(), Some(11));
    assert_eq!(o.get_range("studies/a/b.dcm", 6..11).await.unwrap(), Bytes::from_static(b"ferry"));
    o.put("studies/a/b.dcm", Bytes::from_static(b"second")).await.unwrap();
    assert_eq!(o.get("studies/a/b.dcm").await.unwrap(), Bytes::from_static(b"second"));
    let empty = Bytes::new();
    o.put("empty", empty.clone()).await.unwrap();
    assert_eq!(o.get("empty").await.unwrap(), empty);
}

async fn missing_objects_and_bad_keys(obj: Obj) {
    let (o, _d) = open(obj).await;
    assert_eq!(o.size("nope/x").await.unwrap(), None);
    assert!(matches!(o.get("nope/x").await, Err(ObjectError::NotFound(k)) if k == "nope/x"));
    assert!(matches!(o.get_range("nope/x", 0..1).await, Err(ObjectError::NotFound(_))));
    o.delete("nope/x").await.unwrap();
    for bad in ["", "/abs", "dir/", "a/../b", "a//b"] {
        assert!(
            matches!(o.put(bad, Bytes::from_static(b"x")).await, Err(ObjectError::BadKey(_))),
            "{bad:?} accepted"
        );
    }
}

async fn list_and_delete(obj: Obj) {
    let (o, _d) = open(obj).await;
    for (k, n) in [("s/2/b", 2), ("s/1/a", 1), ("s/1/c", 3), ("t/x", 4)] {
        o.put(k, Bytes::from(vec![7u8; n])).await.unwrap();
    }
    let l = o.list("s").await.unwrap();
    assert_eq!(
        l,
        vec![("s/1/a".to_string(), 1), ("s/1/c".to_string(), 3), ("s/2/b".to_string(), 2)]
    );
    assert_eq!(o.list("s/1/").await.unwrap().len(), 2);
    assert_eq!(o.list("").await.unwrap().len(), 4);
    o.delete("s/1/a").await.unwrap();
    assert_eq!(o.list("s/1").await.unwrap(), vec![("s/1/c".to_string(), 3)]);
    assert_eq!(o.size("s/1/a").await.unwrap(), None);
}

async fn large_stream_upload_is_byte_identical(obj: Obj) {
    let (o, _d) = open(obj).await;
    // 21 MiB in uneven chunks: three multipart parts on S3.
    let mut data = Vec::with_capacity(21 << 20);
    let mut x: u32 = 12345;
    while data.len() < 21 << 20 {
        x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
        data.push((x >> 16) as u8);
    }
    let chunks: Vec<Result<Bytes, std::io::Error>> =
        data.chunks(777_777).map(|c| Ok(Bytes::copy_from_slice(c))).collect();
    let n = o.put_stream("big/object", futures::stream::iter(chunks)).await.unwrap();
    assert_eq!(n, data.len() as u64);
    let back = o.get("big/object").await.unwrap();
    assert_eq!(Sha256::digest(&back), Sha256::digest(&data));
    let mid = 9_000_000u64;
    assert_eq!(
        o.get_range("big/object", mid..mid + 4096).await.unwrap(),
        &data[mid as usize..mid as usize + 4096]
    );
    // A failing input stream leaves nothing behind.
    let failing = futures::stream::iter(vec![
        Ok(Bytes::from(vec![1u8; 1 << 20])),
        Err(std::io::Error::other("client went away")),
    ]);
    assert!(o.put_stream("big/broken", failing).await.is_err());
    assert_eq!(o.size("big/broken").await.unwrap(), None);
}

async fn concurrent_writers(obj: Obj) {
    let (o, _d) = open(obj).await;
    let mut tasks = vec![];
    for i in 0..32u8 {
        let o = o.clone();
        tasks.push(tokio::spawn(async move {
            o.put(&format!("c/{i:02}"), Bytes::from(vec![i; 1000 + i as usize])).await
        }));
    }
    for t in tasks {
        t.await.unwrap().unwrap();
    }
    let l = o.list("c").await.unwrap();
    assert_eq!(l.len(), 32);
    for (i, (k, n)) in l.iter().enumerate() {
        assert_eq!(k, &format!("c/{i:02}"));
        assert_eq!(*n, 1000 + i as u64);
    }
}
