//! The harness's own promise: a test that fails leaves nothing of its set
//! behind in the emulator the other tests share.

use std::collections::HashMap;

use crate::harness::{self, Cleanup, Upload, data_bucket, put, set_stacks, unique_name};
use crate::operate::{deploy, zip_path};

const FAILURE: &str = "the test fails with its set deployed and holding data";

#[tokio::test(flavor = "multi_thread")]
async fn a_test_that_panics_leaves_nothing_of_its_set_behind() {
    let name = unique_name("panic");
    // The failing test, on a thread of its own so that its panic is one
    // this test sees.
    let failing = {
        let name = name.clone();
        std::thread::spawn(move || {
            let _cleanup = Cleanup::new(&name);
            let deploy = deploy(&name, "us-east-1,eu-west-2", &zip_path());
            assert!(deploy.status.success(), "deploy {name}");
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async {
                for region in ["us-east-1", "eu-west-2"] {
                    assert_eq!(set_stacks(region, &name).await.len(), 3, "{region}");
                }
                let object = Upload {
                    region: "us-east-1",
                    key: "kept/unless/deleted.txt".to_owned(),
                    body: b"data".to_vec(),
                    content_type: "text/plain",
                    metadata: HashMap::new(),
                    tags: Vec::new(),
                };
                put(&name, &object).await;
                assert!(
                    harness::bucket_exists("us-east-1", &data_bucket(&name, "us-east-1")).await
                );
            });
            panic!("{FAILURE}");
        })
        .join()
    };
    let panic = failing.expect_err("the failing test panicked");
    assert_eq!(
        panic.downcast_ref::<String>().map(String::as_str),
        Some(FAILURE),
        "it failed where it was meant to"
    );
    // Its stacks, its buckets and its data are gone.
    harness::assert_nothing_created(&name).await;
}
