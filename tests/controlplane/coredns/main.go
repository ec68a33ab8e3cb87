// Command coredns is CoreDNS with only the plugins that the e2e tier's cluster DNS uses.
//
// The stock CoreDNS main imports every plugin, and with them the cloud SDKs of route53,
// azure and clouddns; this one registers the few that serve Kubernetes names:
//
//	bind        listen on the node's bridge address only, never on the machine's others
//	ready       /ready, so the node waits for the kubernetes plugin to sync
//	health      /health
//	errors, log errors (and, with -v, queries) to stderr
//	cache       as on a real cluster
//	kubernetes  <svc>.<ns>.svc.cluster.local, <host>.<subdomain>.<ns>.svc.cluster.local, PTRs
//	template    answers NXDOMAIN for every other name: nothing is forwarded off this machine
//
// It lives in its own Go module (not in the tandem-k8s multi-call binary) because CoreDNS's
// go.mod requires k8s.io/client-go v0.32 and newer grpc/x/net than Kubernetes v1.33 pins:
// merging the two graphs would move the control plane's dependencies off the versions
// Kubernetes was released with. Here CoreDNS builds with exactly the versions it was tested with.
package main

import (
	"github.com/coredns/coredns/core/dnsserver"
	"github.com/coredns/coredns/coremain"

	_ "github.com/coredns/coredns/plugin/bind"
	_ "github.com/coredns/coredns/plugin/cache"
	_ "github.com/coredns/coredns/plugin/errors"
	_ "github.com/coredns/coredns/plugin/health"
	_ "github.com/coredns/coredns/plugin/kubernetes"
	_ "github.com/coredns/coredns/plugin/log"
	_ "github.com/coredns/coredns/plugin/ready"
	_ "github.com/coredns/coredns/plugin/template"
)

// directives is the order in which the plugins see a query; the relative order is
// CoreDNS's own (core/dnsserver/zdirectives.go).
var directives = []string{
	"bind",
	"ready",
	"health",
	"errors",
	"log",
	"cache",
	"template",
	"kubernetes",
}

func init() {
	dnsserver.Directives = directives
}

func main() {
	coremain.Run()
}
