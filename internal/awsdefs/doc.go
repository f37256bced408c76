// Package awsdefs checks the AWS definitions shipped in resources/ against what the code does:
// the IAM policies of resources/iam against the API operations the components call during the
// integration suite, and (in its tests) the lease table templates of resources/table against the
// table the input's dynamodb.create makes.
//
// The IAM check: the integration test packages (plugin/input, plugin/output) use Main as their
// TestMain. It records every operation of the clients built by internal/awssession (every client
// of the components; the tests' own clients from internal/testenv are not recorded), runs the
// tests, and when the whole suite passed against the emulators, compares the operations with the
// component's policies: every operation called must be allowed, and every action allowed must have
// been called or be listed, with its reason, as exempt (fan-out, which is not built yet, and the
// like). KMS is not called by the components (Kinesis calls it on their behalf), so resources/iam/
// kms.json is checked for its form only.
//
// The package is for tests; nothing in the components imports it.
package awsdefs
