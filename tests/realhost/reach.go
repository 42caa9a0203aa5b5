// reach.go: the network referee. No CNI runs in realhost, so nothing enforces NetworkPolicy;
// tests ask instead whether the policies present would let a connection through, and the answer
// comes from cyclonus's policy engine (github.com/mattfenwick/cyclonus/pkg/matcher, the engine
// that became network-policy-api's policy-assistant), not from code of kaas's:
//
//	realhost reach --kubeconfig K --from <namespace>/<pod>|<IP> --to <namespace>/<pod>|<IP> --port P [--protocol TCP]
//
// It reads every NetworkPolicy, Pod, Namespace, Service and EndpointSlice from the API server.
// A destination IP that is a pod's is that pod (internal: its namespace's and its own labels
// count); a Service ClusterIP is first translated to one ready endpoint and its target port,
// as kube-proxy's DNAT does before a CNI evaluates policy (without one, the ClusterIP itself
// is judged); any other IP (a node, the host API
// server, the internet) is external, judged by ipBlock rules alone. It prints one JSON line,
// {"allowed":…,"ingress":…,"egress":…,"to":"<ip>:<port>"}, and exits 0 whatever the verdict;
// 2 when it cannot answer.

package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"net"
	"os"
	"strings"

	"github.com/mattfenwick/cyclonus/pkg/matcher"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
)

// reachVerdict is what `realhost reach` prints.
type reachVerdict struct {
	Allowed bool   `json:"allowed"`
	Ingress bool   `json:"ingress"`
	Egress  bool   `json:"egress"`
	To      string `json:"to"`
}

func reachMain(args []string) {
	fs := flag.NewFlagSet("reach", flag.ExitOnError)
	kubeconfigPath := fs.String("kubeconfig", "", "admin kubeconfig of the host (required)")
	from := fs.String("from", "", "source: <namespace>/<pod>, or the IP address of a client outside (required)")
	to := fs.String("to", "", "destination: <namespace>/<pod> or an IP address (required)")
	port := fs.Int("port", 0, "destination port (required)")
	protocol := fs.String("protocol", "TCP", "TCP, UDP or SCTP")
	_ = fs.Parse(args)
	if *kubeconfigPath == "" || *from == "" || *to == "" || *port <= 0 {
		fmt.Fprintln(os.Stderr, "realhost reach: --kubeconfig, --from, --to and --port are required")
		os.Exit(2)
	}
	cfg, err := clientcmd.BuildConfigFromFlags("", *kubeconfigPath)
	if err != nil {
		fmt.Fprintf(os.Stderr, "realhost reach: %v\n", err)
		os.Exit(2)
	}
	client, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		fmt.Fprintf(os.Stderr, "realhost reach: %v\n", err)
		os.Exit(2)
	}
	verdict, err := reach(context.Background(), client, *from, *to, *port, corev1.Protocol(strings.ToUpper(*protocol)))
	if err != nil {
		fmt.Fprintf(os.Stderr, "realhost reach: %v\n", err)
		os.Exit(2)
	}
	out, _ := json.Marshal(verdict)
	fmt.Println(string(out))
}

// hostView is what the referee reads from the API server.
type hostView struct {
	pods       []corev1.Pod
	namespaces map[string]map[string]string
}

func (c *hostView) peerOfPod(p *corev1.Pod) *matcher.TrafficPeer {
	return &matcher.TrafficPeer{
		IP: p.Status.PodIP,
		Internal: &matcher.InternalPeer{
			PodLabels:       p.Labels,
			NamespaceLabels: c.namespaces[p.Namespace],
			Namespace:       p.Namespace,
		},
	}
}

func (c *hostView) pod(ref string) (*corev1.Pod, error) {
	ns, name, ok := strings.Cut(ref, "/")
	if !ok {
		return nil, fmt.Errorf("%q is not <namespace>/<pod>", ref)
	}
	for i := range c.pods {
		if c.pods[i].Namespace == ns && c.pods[i].Name == name {
			return &c.pods[i], nil
		}
	}
	return nil, fmt.Errorf("no pod %s", ref)
}

func (c *hostView) podWithIP(ip string) *corev1.Pod {
	for i := range c.pods {
		p := &c.pods[i]
		if p.Status.PodIP == ip && !p.Spec.HostNetwork {
			return p
		}
	}
	return nil
}

func reach(ctx context.Context, client kubernetes.Interface, from, to string, port int, protocol corev1.Protocol) (*reachVerdict, error) {
	all := metav1.ListOptions{}
	pods, err := client.CoreV1().Pods("").List(ctx, all)
	if err != nil {
		return nil, err
	}
	nsList, err := client.CoreV1().Namespaces().List(ctx, all)
	if err != nil {
		return nil, err
	}
	netpols, err := client.NetworkingV1().NetworkPolicies("").List(ctx, all)
	if err != nil {
		return nil, err
	}
	c := &hostView{pods: pods.Items, namespaces: map[string]map[string]string{}}
	for _, ns := range nsList.Items {
		c.namespaces[ns.Name] = ns.Labels
	}
	// A source IP that is no pod's is a client outside the cluster (or a node's, after
	// kube-proxy's source NAT): only the destination's ingress rules judge it.
	var source *matcher.TrafficPeer
	if strings.Contains(from, "/") {
		p, err := c.pod(from)
		if err != nil {
			return nil, err
		}
		source = c.peerOfPod(p)
	} else if net.ParseIP(from) == nil {
		return nil, fmt.Errorf("%q is neither <namespace>/<pod> nor an IP address", from)
	} else if p := c.podWithIP(from); p != nil {
		source = c.peerOfPod(p)
	} else {
		source = &matcher.TrafficPeer{IP: from}
	}
	var dest *matcher.TrafficPeer
	portName := ""
	if strings.Contains(to, "/") {
		p, err := c.pod(to)
		if err != nil {
			return nil, err
		}
		dest = c.peerOfPod(p)
	} else {
		if net.ParseIP(to) == nil {
			return nil, fmt.Errorf("%q is neither <namespace>/<pod> nor an IP address", to)
		}
		ip, translated, err := dnat(ctx, client, to, port, protocol)
		if err != nil {
			return nil, err
		}
		port = translated
		if p := c.podWithIP(ip); p != nil {
			dest = c.peerOfPod(p)
		} else {
			dest = &matcher.TrafficPeer{IP: ip}
		}
	}
	// A numeric port can still match a named port of the destination pod's containers.
	if dest.Internal != nil {
		if p := c.podWithIP(dest.IP); p != nil {
			for _, ctr := range p.Spec.Containers {
				for _, cp := range ctr.Ports {
					if int(cp.ContainerPort) == port && (cp.Protocol == protocol || cp.Protocol == "" && protocol == corev1.ProtocolTCP) {
						portName = cp.Name
					}
				}
			}
		}
	}
	list := make([]*networkingv1.NetworkPolicy, 0, len(netpols.Items))
	for i := range netpols.Items {
		list = append(list, &netpols.Items[i])
	}
	policy := matcher.BuildNetworkPolicies(false, list)
	result := policy.IsTrafficAllowed(&matcher.Traffic{
		Source:           source,
		Destination:      dest,
		ResolvedPort:     port,
		ResolvedPortName: portName,
		Protocol:         protocol,
	})
	return &reachVerdict{
		Allowed: result.IsAllowed(),
		Ingress: result.Ingress.IsAllowed(),
		Egress:  result.Egress.IsAllowed(),
		To:      net.JoinHostPort(dest.IP, fmt.Sprint(port)),
	}, nil
}

// dnat does what kube-proxy does to a connection to a Service's ClusterIP: the destination
// becomes one ready endpoint of that Service port, at its target port. Other IPs are kept.
func dnat(ctx context.Context, client kubernetes.Interface, ip string, port int, protocol corev1.Protocol) (string, int, error) {
	services, err := client.CoreV1().Services("").List(ctx, metav1.ListOptions{})
	if err != nil {
		return "", 0, err
	}
	for _, svc := range services.Items {
		if svc.Spec.ClusterIP != ip {
			continue
		}
		for _, sp := range svc.Spec.Ports {
			if int(sp.Port) != port || sp.Protocol != protocol {
				continue
			}
			slices, err := client.DiscoveryV1().EndpointSlices(svc.Namespace).List(ctx, metav1.ListOptions{
				LabelSelector: "kubernetes.io/service-name=" + svc.Name,
			})
			if err != nil {
				return "", 0, err
			}
			for _, slice := range slices.Items {
				for _, p := range slice.Ports {
					if p.Port == nil || (p.Name != nil && *p.Name != sp.Name) {
						continue
					}
					for _, ep := range slice.Endpoints {
						if (ep.Conditions.Ready == nil || *ep.Conditions.Ready) && len(ep.Addresses) > 0 {
							return ep.Addresses[0], int(*p.Port), nil
						}
					}
				}
			}
			// No endpoint (realhost's API server publishes none for `kubernetes`: it listens
			// on loopback only): the ClusterIP itself is judged, as a CNI would see a
			// connection kube-proxy left alone.
			return ip, port, nil
		}
	}
	return ip, port, nil
}
