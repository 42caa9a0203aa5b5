// lb.go: what realhost plays of K3s's ServiceLB (klipper-lb): every LoadBalancer Service gets
// an address, published in status.loadBalancer.ingress, on which each of its TCP ports listens
// and forwards to a ready endpoint of that Service port, as kube-proxy does for node ports.
//
// ServiceLB publishes the nodes' addresses and listens on the Service port of every node, so
// two LoadBalancers cannot share a port. Here every node is 127.0.0.1, so each LoadBalancer
// gets a loopback address of its own from --lb-cidr instead: the first one on which every port
// of the Service can be listened on (another realhost on the machine may hold some). The
// Service's node ports still listen too (proxy.go), as on K3s.

package main

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"sync"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/klog/v2"
)

// loadBalancers holds the address and listeners of every LoadBalancer Service.
type loadBalancers struct {
	client kubernetes.Interface
	proxy  *kubeProxy
	pool   netip.Prefix

	mu       sync.Mutex
	services map[string]*lbService // by namespace/name
}

type lbService struct {
	ip        string
	ports     string // the TCP ports listened on, as text, to notice changes
	listeners []net.Listener
}

func newLoadBalancers(client kubernetes.Interface, proxy *kubeProxy, cidr string) (*loadBalancers, error) {
	pool, err := netip.ParsePrefix(cidr)
	if err != nil || !pool.Addr().Is4() || !pool.Addr().IsLoopback() {
		return nil, fmt.Errorf("--lb-cidr must be an IPv4 loopback range, got %q", cidr)
	}
	return &loadBalancers{client: client, proxy: proxy, pool: pool.Masked(), services: map[string]*lbService{}}, nil
}

func tcpPorts(service *corev1.Service) []corev1.ServicePort {
	var out []corev1.ServicePort
	for _, port := range service.Spec.Ports {
		if port.Protocol == corev1.ProtocolTCP || port.Protocol == "" {
			out = append(out, port)
		}
	}
	return out
}

// sync gives a LoadBalancer Service its address and listeners, and takes them from a Service
// that is gone or no longer a LoadBalancer.
func (l *loadBalancers) sync(service *corev1.Service, deleted bool) {
	key := service.Namespace + "/" + service.Name
	want := !deleted && service.Spec.Type == corev1.ServiceTypeLoadBalancer
	ports := tcpPorts(service)
	portsText := fmt.Sprint(ports)
	l.mu.Lock()
	have := l.services[key]
	if have != nil && (!want || have.ports != portsText) {
		for _, listener := range have.listeners {
			listener.Close()
		}
		delete(l.services, key)
		klog.Infof("servicelb: %s released %s", key, have.ip)
	}
	if want && l.services[key] == nil {
		preferred := ""
		if have != nil {
			preferred = have.ip
		}
		lb, err := l.listen(service, ports, preferred)
		if err != nil {
			klog.Errorf("servicelb: %s: %v", key, err)
			l.mu.Unlock()
			return
		}
		l.services[key] = lb
		klog.Infof("servicelb: %s listening on %s (%s)", key, lb.ip, portsText)
	}
	ip := ""
	if lb := l.services[key]; lb != nil {
		ip = lb.ip
	}
	l.mu.Unlock()
	if !deleted {
		l.publish(service, ip)
	}
}

// listen takes the first address of the pool (preferred first) on which every port listens.
func (l *loadBalancers) listen(service *corev1.Service, ports []corev1.ServicePort, preferred string) (*lbService, error) {
	taken := map[string]bool{}
	for _, lb := range l.services {
		taken[lb.ip] = true
	}
	var candidates []string
	if preferred != "" {
		candidates = append(candidates, preferred)
	}
	for addr := l.pool.Addr().Next(); l.pool.Contains(addr) && len(candidates) < 4096; addr = addr.Next() {
		if !taken[addr.String()] {
			candidates = append(candidates, addr.String())
		}
	}
	for _, ip := range candidates {
		lb := &lbService{ip: ip, ports: fmt.Sprint(ports)}
		ok := true
		for _, port := range ports {
			listener, err := net.Listen("tcp", net.JoinHostPort(ip, strconv.Itoa(int(port.Port))))
			if err != nil {
				ok = false
				break
			}
			lb.listeners = append(lb.listeners, listener)
			np := &nodePort{namespace: service.Namespace, service: service.Name, port: port, listener: listener}
			go l.proxy.accept(np)
		}
		if ok {
			return lb, nil
		}
		for _, listener := range lb.listeners {
			listener.Close()
		}
	}
	return nil, fmt.Errorf("no address of %s free for its ports", l.pool)
}

// publish writes the address (or none) to the Service's status, as ServiceLB does.
func (l *loadBalancers) publish(service *corev1.Service, ip string) {
	var want []corev1.LoadBalancerIngress
	if ip != "" {
		want = []corev1.LoadBalancerIngress{{IP: ip}}
	}
	have := service.Status.LoadBalancer.Ingress
	if len(have) == len(want) && (len(want) == 0 || have[0].IP == ip && len(have) == 1) {
		return
	}
	updated := service.DeepCopy()
	updated.Status.LoadBalancer.Ingress = want
	if _, err := l.client.CoreV1().Services(service.Namespace).UpdateStatus(context.Background(), updated, metav1.UpdateOptions{}); err != nil {
		// The informer's next event or resync tries again.
		klog.Warningf("servicelb: status of %s/%s: %v", service.Namespace, service.Name, err)
	}
}

func (l *loadBalancers) closeAll() {
	l.mu.Lock()
	defer l.mu.Unlock()
	for key, lb := range l.services {
		for _, listener := range lb.listeners {
			listener.Close()
		}
		delete(l.services, key)
	}
}
