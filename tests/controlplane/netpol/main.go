// tandem-netpol: kube-router's NetworkPolicy controller alone, for the e2e tier's real node.
//
// The node's CNI (Debian's bridge plugin) connects pods but enforces no NetworkPolicy, so the
// policies Tandem renders would never be proven. kube-router's policy controller enforces them
// with iptables and ipsets on the bridged traffic (br_netfilter), which is all this kernel
// offers (no nft_queue, so no NFQUEUE-based controller). Only the policy controller is linked
// in: kube-router's own command also carries its BGP router, IPVS proxy and CRI client, which
// this node does not want (kube-proxy serves Services) and which would pull in far more code.
//
// Flags are kube-router's own (--kubeconfig, --hostname-override, --service-cluster-ip-range,
// --iptables-sync-period, ...). SIGTERM stops the controller; its iptables chains and ipsets
// stay until the node's cleanup removes them (tests/controlplane/node.py), which it does
// whether this process stopped or was killed.
package main

import (
	"flag"
	"fmt"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"

	"github.com/cloudnativelabs/kube-router/v2/pkg/controllers/netpol"
	"github.com/cloudnativelabs/kube-router/v2/pkg/healthcheck"
	"github.com/cloudnativelabs/kube-router/v2/pkg/options"
	"github.com/spf13/pflag"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/klog/v2"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintf(os.Stderr, "tandem-netpol: %v\n", err)
		os.Exit(1)
	}
}

func run() error {
	klog.InitFlags(nil)
	config := options.NewKubeRouterConfig()
	config.AddFlags(pflag.CommandLine)
	pflag.Parse()
	// klog's own flags are Go flags, set from kube-router's --v as its command does.
	if err := flag.Set("v", config.VLevel); err != nil {
		return err
	}
	config.RunFirewall, config.RunRouter, config.RunServiceProxy = true, false, false
	config.MetricsEnabled = false

	restConfig, err := clientcmd.BuildConfigFromFlags(config.Master, config.Kubeconfig)
	if err != nil {
		return fmt.Errorf("kubeconfig: %w", err)
	}
	client, err := kubernetes.NewForConfig(restConfig)
	if err != nil {
		return fmt.Errorf("client: %w", err)
	}

	stopCh := make(chan struct{})
	factory := informers.NewSharedInformerFactory(client, 0)
	pods := factory.Core().V1().Pods().Informer()
	namespaces := factory.Core().V1().Namespaces().Informer()
	policies := factory.Networking().V1().NetworkPolicies().Informer()
	factory.Start(stopCh)
	synced := make(chan struct{})
	go func() { factory.WaitForCacheSync(stopCh); close(synced) }()
	select {
	case <-synced:
	case <-time.After(config.CacheSyncTimeout):
		return fmt.Errorf("informer caches not synced in %s", config.CacheSyncTimeout)
	}

	iptablesHandlers, ipsetHandlers, err := netpol.NewIPTablesHandlers(config)
	if err != nil {
		return err
	}
	var ipsetMutex sync.Mutex
	npc, err := netpol.NewNetworkPolicyController(client, config, pods, policies, namespaces,
		&ipsetMutex, iptablesHandlers, ipsetHandlers)
	if err != nil {
		return fmt.Errorf("policy controller: %w", err)
	}
	if _, err = pods.AddEventHandler(npc.PodEventHandler); err != nil {
		return err
	}
	if _, err = namespaces.AddEventHandler(npc.NamespaceEventHandler); err != nil {
		return err
	}
	if _, err = policies.AddEventHandler(npc.NetworkPolicyEventHandler); err != nil {
		return err
	}

	// The controller reports each sync on this channel (kube-router's health check reads it);
	// nothing here needs it, but an unread channel would block the controller.
	heartbeats := make(chan *healthcheck.ControllerHeartbeat, 10)
	go func() {
		for range heartbeats {
		}
	}()
	var wg sync.WaitGroup
	wg.Add(1)
	go npc.Run(heartbeats, stopCh, &wg)

	signals := make(chan os.Signal, 1)
	signal.Notify(signals, syscall.SIGINT, syscall.SIGTERM)
	<-signals
	close(stopCh)
	wg.Wait()
	return nil
}
