package main

import (
	"flag"
	"fmt"
	"net/url"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"go.etcd.io/etcd/server/v3/embed"
)

func parseURLs(s string) ([]url.URL, error) {
	var out []url.URL
	for _, part := range strings.Split(s, ",") {
		u, err := url.Parse(strings.TrimSpace(part))
		if err != nil {
			return nil, err
		}
		out = append(out, *u)
	}
	return out, nil
}

// runEtcd starts a single-member etcd through the embed package, at the
// etcd version that the pinned Kubernetes release requires. It accepts the
// subset of etcd's flags that a local test control plane needs.
func runEtcd(args []string) int {
	fs := flag.NewFlagSet("etcd", flag.ContinueOnError)
	name := fs.String("name", "tandem", "member name")
	dataDir := fs.String("data-dir", "", "data directory (required)")
	listenClient := fs.String("listen-client-urls", "http://127.0.0.1:2379", "")
	advertiseClient := fs.String("advertise-client-urls", "", "defaults to --listen-client-urls")
	listenPeer := fs.String("listen-peer-urls", "http://127.0.0.1:2380", "")
	listenMetrics := fs.String("listen-metrics-urls", "", "")
	quotaBytes := fs.Int64("quota-backend-bytes", 0, "")
	unsafeNoFsync := fs.Bool("unsafe-no-fsync", false, "disable fsync (test clusters only)")
	logLevel := fs.String("log-level", "warn", "")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if *dataDir == "" {
		fmt.Fprintln(os.Stderr, "etcd: --data-dir is required")
		return 2
	}
	if *advertiseClient == "" {
		*advertiseClient = *listenClient
	}

	cfg := embed.NewConfig()
	cfg.Name = *name
	cfg.Dir = *dataDir
	cfg.LogLevel = *logLevel
	cfg.UnsafeNoFsync = *unsafeNoFsync
	cfg.QuotaBackendBytes = *quotaBytes
	var err error
	if cfg.ListenClientUrls, err = parseURLs(*listenClient); err != nil {
		fmt.Fprintln(os.Stderr, "etcd:", err)
		return 2
	}
	if cfg.AdvertiseClientUrls, err = parseURLs(*advertiseClient); err != nil {
		fmt.Fprintln(os.Stderr, "etcd:", err)
		return 2
	}
	if cfg.ListenPeerUrls, err = parseURLs(*listenPeer); err != nil {
		fmt.Fprintln(os.Stderr, "etcd:", err)
		return 2
	}
	cfg.AdvertisePeerUrls = cfg.ListenPeerUrls
	if *listenMetrics != "" {
		if cfg.ListenMetricsUrls, err = parseURLs(*listenMetrics); err != nil {
			fmt.Fprintln(os.Stderr, "etcd:", err)
			return 2
		}
	}
	cfg.InitialCluster = cfg.InitialClusterFromName(cfg.Name)

	e, err := embed.StartEtcd(cfg)
	if err != nil {
		fmt.Fprintln(os.Stderr, "etcd: start:", err)
		return 1
	}
	select {
	case <-e.Server.ReadyNotify():
		fmt.Fprintf(os.Stderr, "etcd: ready, serving clients on %s\n", *listenClient)
	case <-time.After(60 * time.Second):
		e.Server.Stop()
		fmt.Fprintln(os.Stderr, "etcd: not ready after 60s")
		return 1
	}

	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM)
	select {
	case s := <-sigs:
		fmt.Fprintf(os.Stderr, "etcd: %v, stopping\n", s)
		e.Close()
		return 0
	case err := <-e.Err():
		fmt.Fprintln(os.Stderr, "etcd:", err)
		e.Close()
		return 1
	}
}
