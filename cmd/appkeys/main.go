// Command appkeys is the key service (serve), the one-machine stack (up) and
// the command-line client for the appkeys API.
package main

import (
	"fmt"
	"os"

	"github.com/spf13/cobra"
)

// commands are added by each file's init, one file a command group, so the
// groups stay independent of each other.
var commands []func() *cobra.Command

func newRootCmd() *cobra.Command {
	root := &cobra.Command{
		Use:           "appkeys",
		Short:         "API keys for Container Apps: the key service, the one-machine stack and the client",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	for _, c := range commands {
		root.AddCommand(c())
	}
	return root
}

func main() {
	if err := newRootCmd().Execute(); err != nil {
		fmt.Fprintln(os.Stderr, "appkeys: "+err.Error())
		os.Exit(1)
	}
}
