//! The test harness: build, list, partition, schedule, run, retry.
