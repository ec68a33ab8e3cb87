// Command tandem-probe is the one program of the e2e tier's smoke-test image: a static
// binary, so that the image needs no base root filesystem. Each subcommand checks one thing
// a real node must provide and says what it saw on stdout (read back with kubectl logs).
//
//	tandem-probe serve PORT        answer every TCP connection with "hello from <hostname>"
//	tandem-probe dial HOST:PORT... resolve each HOST through the pod's DNS, connect, print the answer
//	tandem-probe pair HOST:PORT    in an Indexed Job: index 0 serves PORT until one peer has
//	                               connected, then exits 0; every other index dials HOST:PORT
//	tandem-probe apiserver         GET /version through the kubernetes Service with the pod's
//	                               service-account token, verifying the cluster CA
//
// dial and apiserver retry for up to $PROBE_TIMEOUT seconds (default 60): a peer's DNS
// record appears only once its pod has an address.
package main

import (
	"bufio"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"
)

const saDir = "/var/run/secrets/kubernetes.io/serviceaccount"

func main() {
	if len(os.Args) < 2 {
		fail("usage: tandem-probe {serve PORT|dial HOST:PORT|apiserver}")
	}
	switch os.Args[1] {
	case "serve":
		serve(arg(2), false)
	case "dial":
		for _, addr := range os.Args[2:] {
			retry("dial "+addr, func() error { return dial(addr) })
		}
	case "pair":
		addr := arg(2)
		if os.Getenv("JOB_COMPLETION_INDEX") == "0" {
			_, port, err := net.SplitHostPort(addr)
			if err != nil {
				fail(err.Error())
			}
			serve(port, true)
		} else {
			retry("dial "+addr, func() error { return dial(addr) })
		}
	case "apiserver":
		retry("apiserver", apiserver)
	default:
		fail("unknown subcommand " + os.Args[1])
	}
}

func arg(i int) string {
	if len(os.Args) <= i {
		fail("missing argument")
	}
	return os.Args[i]
}

func fail(msg string) {
	fmt.Fprintln(os.Stderr, "tandem-probe:", msg)
	os.Exit(2)
}

// serve answers connections on port; with once, it returns after the first.
func serve(port string, once bool) {
	host, _ := os.Hostname()
	ln, err := net.Listen("tcp", ":"+port)
	if err != nil {
		fail(err.Error())
	}
	fmt.Printf("serving on :%s as %s\n", port, host)
	for {
		conn, err := ln.Accept()
		if err != nil {
			continue
		}
		fmt.Printf("connection from %s\n", conn.RemoteAddr())
		fmt.Fprintf(conn, "hello from %s\n", host)
		conn.Close()
		if once {
			return
		}
	}
}

func dial(addr string) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return err
	}
	ips, err := net.LookupHost(host)
	if err != nil {
		return err
	}
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return err
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(5 * time.Second))
	line, err := bufio.NewReader(conn).ReadString('\n')
	if err != nil {
		return err
	}
	fmt.Printf("resolved %s to %s; answer: %s", host, strings.Join(ips, ","), line)
	return nil
}

func apiserver() error {
	host, port := os.Getenv("KUBERNETES_SERVICE_HOST"), os.Getenv("KUBERNETES_SERVICE_PORT")
	token, err := os.ReadFile(saDir + "/token")
	if err != nil {
		return err
	}
	caPEM, err := os.ReadFile(saDir + "/ca.crt")
	if err != nil {
		return err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(caPEM) {
		return fmt.Errorf("no certificate in %s/ca.crt", saDir)
	}
	client := &http.Client{
		Timeout:   5 * time.Second,
		Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}},
	}
	// Through the Service's ClusterIP (what in-cluster clients do), then through its DNS name.
	for _, base := range []string{"https://" + net.JoinHostPort(host, port), "https://kubernetes.default.svc"} {
		req, _ := http.NewRequest("GET", base+"/version", nil)
		req.Header.Set("Authorization", "Bearer "+strings.TrimSpace(string(token)))
		resp, err := client.Do(req)
		if err != nil {
			return err
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("%s/version: %s: %s", base, resp.Status, body)
		}
		var v struct{ GitVersion string }
		if err := json.Unmarshal(body, &v); err != nil {
			return err
		}
		fmt.Printf("apiserver %s at %s\n", v.GitVersion, base)
	}
	return nil
}

func retry(what string, f func() error) {
	timeout := 60
	if s := os.Getenv("PROBE_TIMEOUT"); s != "" {
		timeout, _ = strconv.Atoi(s)
	}
	deadline := time.Now().Add(time.Duration(timeout) * time.Second)
	for {
		err := f()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			fmt.Printf("%s: giving up: %v\n", what, err)
			os.Exit(1)
		}
		fmt.Printf("%s: %v (retrying)\n", what, err)
		time.Sleep(time.Second)
	}
}
