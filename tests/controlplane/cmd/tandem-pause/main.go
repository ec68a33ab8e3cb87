// Command tandem-pause is the pod sandbox ("pause") process of the e2e tier's real node.
//
// Public registries cannot be reached from the test machines, so the sandbox image that
// containerd asks for (sandbox_image) is built locally from this static program: like
// registry.k8s.io/pause it holds the pod's namespaces open, reaps the zombies that land on
// it as PID 1, and exits on SIGTERM or SIGINT.
package main

import (
	"os"
	"os/signal"
	"syscall"
)

func main() {
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT, syscall.SIGCHLD)
	for s := range sigs {
		if s != syscall.SIGCHLD {
			os.Exit(0)
		}
		for {
			var status syscall.WaitStatus
			pid, err := syscall.Wait4(-1, &status, syscall.WNOHANG, nil)
			if pid <= 0 || err != nil {
				break
			}
		}
	}
}
