// realhost: a real Kubernetes host for kaas's tests, on loopback, in one process — kine on
// SQLite, the real kube-apiserver (K3s's admission plugins, PodTolerationRestriction on
// request), kube-controller-manager and kube-scheduler, simulated nodes and kubelets, the
// real K3K controllers with their CRDs, and for every K3K Cluster a real kube-apiserver as
// its virtual cluster. Its flags mirror fakehost's where they overlap. Once everything is up
// it writes an admin kubeconfig and prints the API server's URL on one line of stdout.
// `realhost reach` (reach.go) answers whether the NetworkPolicies present let a pod reach an
// address.

package main

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"syscall"
	"time"

	"github.com/sirupsen/logrus"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/klog/v2"
)

func fatalf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "realhost: "+format+"\n", args...)
	klog.Flush()
	os.Exit(1)
}

func main() {
	// `realhost reach …`: the network referee (reach.go), a one-shot question, not a host.
	if len(os.Args) > 1 && os.Args[1] == "reach" {
		reachMain(os.Args[2:])
		return
	}
	var (
		kubeconfigOut = flag.String("kubeconfig-out", "", "where to write the admin kubeconfig (required)")
		listen        = flag.String("listen", "127.0.0.1:0", "address of the host API server; port 0 picks a free one")
		nodes         = flag.Int("nodes", 1, "simulated nodes (the first is the control-plane node)")
		nodeCPU       = flag.String("node-cpu", "4", "CPU capacity of each node")
		nodeMemory    = flag.String("node-memory", "8Gi", "memory capacity of each node")
		nodePods      = flag.String("node-pods", "110", "pod capacity of each node")
		dataDir       = flag.String("data-dir", "", "state (datastores, certificates, volumes); default: a temporary directory removed on exit")
		crds          = flag.String("crds", "", "directory of K3K CRDs; default: crds/ beside the binary (tests/realhost/build.sh puts K3K's there)")
		tolerations   = flag.Bool("pod-toleration-restriction", false, "enable the PodTolerationRestriction admission plugin, as the kaas installer does")
		noNetpol      = flag.Bool("disable-network-policy", false, "present a K3s started with --disable-network-policy (in its nodes' k3s.io/node-args), which enforces no NetworkPolicy")
		stdinLifeline = flag.Bool("exit-with-stdin", false, "exit when standard input closes (so a test's crash cannot leave realhost running)")
		logFile       = flag.String("log-file", "", "write the components' logs here instead of stderr")
		auditDir      = flag.String("audit-dir", "", "write every API server's audit log of writes here (host.log, <namespace>_<cluster>.log), so tests can count what a client wrote")
		verbosity     = flag.Int("v", 0, "log verbosity of the Kubernetes components")
		serviceCIDR   = flag.String("service-cidr", defaultServiceCIDR, "ClusterIP range; must be loopback (127.0.0.0/8): realhost listens on ClusterIPs. Give a second realhost on the machine another one")
		nodePortRange = flag.String("node-port-range", "30000-32767", "NodePort range (listened on 127.0.0.1); give a second realhost on the machine a range of its own")
		lbCIDR        = flag.String("lb-cidr", "127.77.0.0/16", "loopback range the ServiceLB stand-in gives LoadBalancer Services addresses from (each the first one free on this machine)")
		ingressListen = flag.String("ingress-listen", "127.0.0.1:0", "where the Traefik stand-in's TLS entry point (websecure) listens; port 0 picks a free one")
		ingressOut    = flag.String("ingress-addr-out", "", "write the address the ingress entry point listens on here")
	)
	flag.Parse()
	if *kubeconfigOut == "" {
		fatalf("--kubeconfig-out is required")
	}
	if *nodes < 1 {
		fatalf("--nodes must be at least 1")
	}
	host, portText, err := net.SplitHostPort(*listen)
	if err != nil || host != "127.0.0.1" {
		fatalf("--listen must be 127.0.0.1:<port>, got %q", *listen)
	}
	port, err := strconv.Atoi(portText)
	if err != nil {
		fatalf("--listen: bad port %q", portText)
	}
	setupLogging(*logFile, *verbosity)

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if *stdinLifeline {
		go func() {
			_, _ = bufio.NewReader(os.Stdin).ReadString(0)
			stop()
		}()
	}

	dir := *dataDir
	temporary := dir == ""
	if temporary {
		if dir, err = os.MkdirTemp("", "realhost-"); err != nil {
			fatalf("%v", err)
		}
	} else if err := os.MkdirAll(dir, 0o700); err != nil {
		fatalf("%v", err)
	}
	crdDir := *crds
	if crdDir == "" {
		exe, err := os.Executable()
		if err != nil {
			fatalf("%v", err)
		}
		crdDir = filepath.Join(filepath.Dir(exe), "crds")
	}

	started := time.Now()
	audit = *auditDir
	url, err := run(ctx, dir, crdDir, port, *tolerations, *serviceCIDR, *nodePortRange, *kubeconfigOut, exposeSpec{LBCIDR: *lbCIDR, IngressListen: *ingressListen, IngressOut: *ingressOut}, nodeSpec{Count: *nodes, CPU: *nodeCPU, Memory: *nodeMemory, Pods: *nodePods, DisableNetworkPolicy: *noNetpol})
	if err != nil {
		fatalf("%v", err)
	}
	klog.Infof("realhost ready in %s", time.Since(started).Round(time.Millisecond))
	fmt.Println(url)
	<-ctx.Done()
	// Give the components a moment to stop before their files go.
	time.Sleep(500 * time.Millisecond)
	if temporary {
		_ = os.RemoveAll(dir)
	}
}

func setupLogging(file string, verbosity int) {
	fs := flag.NewFlagSet("klog", flag.ExitOnError)
	klog.InitFlags(fs)
	_ = fs.Set("v", strconv.Itoa(verbosity))
	if file != "" {
		_ = fs.Set("logtostderr", "false")
		_ = fs.Set("alsologtostderr", "false")
		_ = fs.Set("log_file", file)
		_ = fs.Set("one_output", "true")
		_ = fs.Set("stderrthreshold", "FATAL")
		// kine logs through logrus.
		if f, err := os.OpenFile(file, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600); err == nil {
			logrus.SetOutput(f)
		}
	}
}

// exposeSpec: the ServiceLB and Traefik stand-ins (lb.go, ingress.go).
type exposeSpec struct {
	LBCIDR, IngressListen, IngressOut string
}

func run(ctx context.Context, dir, crdDir string, port int, tolerations bool, serviceCIDR, nodePortRange, kubeconfigOut string, expose exposeSpec, nodes nodeSpec) (string, error) {
	sockets, err := os.MkdirTemp("", "rh")
	if err != nil {
		return "", err
	}
	cp, err := startControlPlane(ctx, controlPlaneOptions{
		Dir: filepath.Join(dir, "host"), Socket: filepath.Join(sockets, "kine.sock"), Port: port,
		PodTolerationRestriction: tolerations, ServiceCIDR: serviceCIDR, NodePortRange: nodePortRange,
	})
	if err != nil {
		return "", err
	}
	cfg := cp.AdminConfig()
	client, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return "", err
	}
	clientAs := func(user string) (*rest.Config, kubernetes.Interface, error) {
		c, err := cp.ClientConfig(user)
		if err != nil {
			return nil, nil, err
		}
		k, err := kubernetes.NewForConfig(c)
		return c, k, err
	}
	_, kubeletClient, err := clientAs("realhost:kubelets")
	if err != nil {
		return "", err
	}
	_, provisionerClient, err := clientAs("realhost:local-path-provisioner")
	if err != nil {
		return "", err
	}
	k3kConfig, _, err := clientAs("system:serviceaccount:k3k-system:k3k")
	if err != nil {
		return "", err
	}
	if err := waitFor(ctx, "the system namespaces", func() bool {
		for _, ns := range []string{"default", "kube-system", "kube-public", "kube-node-lease"} {
			if _, err := client.CoreV1().Namespaces().Get(ctx, ns, metav1.GetOptions{}); err != nil {
				return false
			}
		}
		return true
	}); err != nil {
		return "", err
	}
	volumes, err := startVolumes(ctx, provisionerClient, filepath.Join(dir, "volumes"))
	if err != nil {
		return "", err
	}
	if err := installCRDs(ctx, cfg, crdDir); err != nil {
		return "", err
	}
	if err := installK3kChartObjects(ctx, client); err != nil {
		return "", err
	}
	backends := newBackends()
	virtual, err := newVirtualClusters(kubeletClient, volumes, backends, dir)
	if err != nil {
		return "", err
	}
	_, proxyClient, err := clientAs("realhost:kube-proxy")
	if err != nil {
		return "", err
	}
	proxy, err := startKubeProxy(ctx, proxyClient, backends, expose.LBCIDR)
	if err != nil {
		return "", err
	}
	if err := installIngressRouteCRD(ctx, cfg); err != nil {
		return "", err
	}
	ingressConfig, _, err := clientAs("realhost:traefik")
	if err != nil {
		return "", err
	}
	if err := startIngress(ctx, ingressConfig, proxy, expose.IngressListen, expose.IngressOut); err != nil {
		return "", err
	}
	if _, err := startKubelets(ctx, kubeletClient, nodes, virtual); err != nil {
		return "", err
	}
	// The node lifecycle controller taints new nodes not-ready until it has seen them Ready.
	if err := waitFor(ctx, "nodes Ready and untainted", func() bool {
		list, err := client.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
		if err != nil || len(list.Items) != nodes.Count {
			return false
		}
		for _, n := range list.Items {
			for _, t := range n.Spec.Taints {
				if t.Key == corev1.TaintNodeNotReady || t.Key == corev1.TaintNodeUnreachable {
					return false
				}
			}
		}
		return true
	}); err != nil {
		return "", err
	}
	// Service accounts come from the controller manager: wait for them, so a pod created right
	// after start is not refused for a missing `default` ServiceAccount.
	if err := waitFor(ctx, "the default ServiceAccount", func() bool {
		_, err := client.CoreV1().ServiceAccounts("default").Get(ctx, "default", metav1.GetOptions{})
		return err == nil
	}); err != nil {
		return "", err
	}
	if err := startClusterDNS(ctx, client); err != nil {
		return "", err
	}
	if err := startK3k(ctx, k3kConfig, klog.Background().WithName("k3k")); err != nil {
		return "", err
	}
	if err := clientcmd.WriteToFile(kubeconfig(cp.URL, cp.ServerCA.CertPEM, cp.Admin, "default"), kubeconfigOut); err != nil {
		return "", err
	}
	return cp.URL, nil
}

func waitFor(ctx context.Context, what string, ok func() bool) error {
	deadline := time.Now().Add(60 * time.Second)
	for !ok() {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("timed out waiting for %s", what)
		}
		time.Sleep(50 * time.Millisecond)
	}
	return nil
}
