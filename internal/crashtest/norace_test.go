//go:build !race

package crashtest

// raceBuild is true when the tests run under -race (see race_test.go).
const raceBuild = false
