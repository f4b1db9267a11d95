//! Reports: the versioned JSON report, JUnit XML, GitHub Actions output.
