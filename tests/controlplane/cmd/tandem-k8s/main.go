// Command tandem-k8s is a multi-call binary holding the Kubernetes control
// plane that Tandem's cluster tests run against:
//
//	tandem-k8s etcd ...                     embedded etcd (go.etcd.io/etcd/server/v3/embed)
//	tandem-k8s kube-apiserver ...           k8s.io/kubernetes/cmd/kube-apiserver/app
//	tandem-k8s kube-controller-manager ...  k8s.io/kubernetes/cmd/kube-controller-manager/app
//	tandem-k8s kube-scheduler ...           k8s.io/kubernetes/cmd/kube-scheduler/app
//	tandem-k8s kubectl ...                  k8s.io/kubectl/pkg/cmd
//	tandem-k8s kubelet ...                  k8s.io/kubernetes/cmd/kubelet/app (the e2e tier's real node)
//	tandem-k8s kube-proxy ...               k8s.io/kubernetes/cmd/kube-proxy/app (ClusterIP Services on it)
//	tandem-k8s version
//
// It can also be called through a symlink named after the component
// (bin/kube-apiserver -> tandem-k8s), busybox style.
package main

import (
	"fmt"
	"os"
	"path/filepath"
	_ "time/tzdata" // CronJob time zones, as in the upstream mains

	"github.com/spf13/cobra"
	"k8s.io/component-base/cli"
	_ "k8s.io/component-base/logs/json/register"          // JSON log format registration
	_ "k8s.io/component-base/metrics/prometheus/clientgo" // client-go prometheus plugins
	_ "k8s.io/component-base/metrics/prometheus/version"  // version metric registration
	"k8s.io/component-base/version"
	kubectlcmd "k8s.io/kubectl/pkg/cmd"
	kubectlutil "k8s.io/kubectl/pkg/cmd/util"
	apiserver "k8s.io/kubernetes/cmd/kube-apiserver/app"
	controllermanager "k8s.io/kubernetes/cmd/kube-controller-manager/app"
	kubeproxy "k8s.io/kubernetes/cmd/kube-proxy/app"
	scheduler "k8s.io/kubernetes/cmd/kube-scheduler/app"
	kubelet "k8s.io/kubernetes/cmd/kubelet/app"
)

var commands = map[string]func() *cobra.Command{
	"kube-apiserver":          apiserver.NewAPIServerCommand,
	"kube-controller-manager": controllermanager.NewControllerManagerCommand,
	"kube-scheduler": func() *cobra.Command {
		return scheduler.NewSchedulerCommand()
	},
	"kubelet":    kubelet.NewKubeletCommand,
	"kube-proxy": kubeproxy.NewProxyCommand,
}

func usage() {
	fmt.Fprintf(os.Stderr, "usage: tandem-k8s {etcd|kube-apiserver|kube-controller-manager|kube-scheduler|kubelet|kube-proxy|kubectl|version} [flags]\n")
	os.Exit(2)
}

func main() {
	name := filepath.Base(os.Args[0])
	args := os.Args[1:]
	if name == "tandem-k8s" {
		if len(args) == 0 {
			usage()
		}
		name, args = args[0], args[1:]
	}
	// cobra reads os.Args[1:]; make it look like the component was called directly.
	os.Args = append([]string{name}, args...)

	switch name {
	case "etcd":
		os.Exit(runEtcd(args))
	case "kubectl":
		command := kubectlcmd.NewDefaultKubectlCommand()
		if err := cli.RunNoErrOutput(command); err != nil {
			kubectlutil.CheckErr(err)
		}
		return
	case "version":
		fmt.Println(version.Get().GitVersion)
		return
	}
	newCommand, ok := commands[name]
	if !ok {
		usage()
	}
	os.Exit(cli.Run(newCommand()))
}
