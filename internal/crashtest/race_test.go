//go:build race

package crashtest

// raceBuild is true when the tests run under -race: the service binary is
// then built with -race too (see run).
const raceBuild = true
