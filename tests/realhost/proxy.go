// proxy.go: what realhost plays of kube-proxy — the node ports of NodePort and LoadBalancer
// Services, on 127.0.0.1 (the only address a client of the simulated nodes can reach). Like
// kube-proxy it follows the Services and their EndpointSlices: every node port of a Service
// listens while the Service carries it, and each connection goes to one ready endpoint of that
// Service port (chosen at random, as kube-proxy's iptables rules do), at the slice's port for
// it; with no ready endpoint the connection is closed, as kube-proxy rejects it.
//
// An endpoint is a pod IP, and no pod runs here: a connection reaches an endpoint only when
// something in realhost registered that pod IP and port in Backends (the K3s server pods of
// K3K's Clusters, played by VirtualClusters); to any other endpoint it is closed, as a dead
// pod would refuse it. Bytes pass through untouched: TLS ends at the backend, which sees the
// client's certificate.

package main

import (
	"context"
	"io"
	"math/rand/v2"
	"net"
	"strconv"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	corelisters "k8s.io/client-go/listers/core/v1"
	discoverylisters "k8s.io/client-go/listers/discovery/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/klog/v2"
)

// Backends is the part of the pod network realhost serves: pod IP and port → the local
// address that answers for it.
type Backends struct {
	mu    sync.RWMutex
	local map[string]string
}

func newBackends() *Backends { return &Backends{local: map[string]string{}} }

func backendKey(podIP string, port int32) string {
	return net.JoinHostPort(podIP, strconv.Itoa(int(port)))
}

// Register makes connections to podIP:port go to local.
func (b *Backends) Register(podIP string, port int32, local string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.local[backendKey(podIP, port)] = local
}

// Unregister forgets podIP:port (its pod stopped).
func (b *Backends) Unregister(podIP string, port int32) {
	b.mu.Lock()
	defer b.mu.Unlock()
	delete(b.local, backendKey(podIP, port))
}

// Lookup is the local address serving podIP:port, if anything does.
func (b *Backends) Lookup(podIP string, port int32) (string, bool) {
	b.mu.RLock()
	defer b.mu.RUnlock()
	local, ok := b.local[backendKey(podIP, port)]
	return local, ok
}

// kubeProxy serves the node ports of every NodePort and LoadBalancer Service, and the
// LoadBalancers' own addresses (lb.go).
type kubeProxy struct {
	backends *Backends
	slices   discoverylisters.EndpointSliceLister
	services corelisters.ServiceLister
	lbs      *loadBalancers

	mu    sync.Mutex
	ports map[int32]*nodePort // by node port
}

// nodePort is one listening node port and the Service port it stands for.
type nodePort struct {
	namespace, service string
	port               corev1.ServicePort
	listener           net.Listener
}

// startKubeProxy follows Services and EndpointSlices in every namespace and serves node ports
// and LoadBalancer addresses (from lbCIDR) until ctx ends.
func startKubeProxy(ctx context.Context, client kubernetes.Interface, backends *Backends, lbCIDR string) (*kubeProxy, error) {
	// The periodic resync retries node ports that could not be listened on.
	factory := informers.NewSharedInformerFactory(client, 30*time.Second)
	services := factory.Core().V1().Services().Informer()
	p := &kubeProxy{
		backends: backends,
		slices:   factory.Discovery().V1().EndpointSlices().Lister(),
		services: factory.Core().V1().Services().Lister(),
		ports:    map[int32]*nodePort{},
	}
	lbs, err := newLoadBalancers(client, p, lbCIDR)
	if err != nil {
		return nil, err
	}
	p.lbs = lbs
	syncBoth := func(obj any, deleted bool) {
		p.sync(obj, deleted)
		if service, ok := obj.(*corev1.Service); ok {
			p.lbs.sync(service, deleted)
		}
	}
	if _, err := services.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(obj any) { syncBoth(obj, false) },
		UpdateFunc: func(_, obj any) { syncBoth(obj, false) },
		DeleteFunc: func(obj any) {
			if t, ok := obj.(cache.DeletedFinalStateUnknown); ok {
				obj = t.Obj
			}
			syncBoth(obj, true)
		},
	}); err != nil {
		return nil, err
	}
	factory.Start(ctx.Done())
	factory.WaitForCacheSync(ctx.Done())
	go func() {
		<-ctx.Done()
		p.mu.Lock()
		defer p.mu.Unlock()
		for number, np := range p.ports {
			np.listener.Close()
			delete(p.ports, number)
		}
		p.lbs.closeAll()
	}()
	return p, nil
}

// sync makes the listening node ports of the Service match its spec: a port that went or
// changed stops listening, a new one starts.
func (p *kubeProxy) sync(obj any, deleted bool) {
	service, ok := obj.(*corev1.Service)
	if !ok {
		return
	}
	want := map[int32]corev1.ServicePort{}
	if !deleted && (service.Spec.Type == corev1.ServiceTypeNodePort || service.Spec.Type == corev1.ServiceTypeLoadBalancer) {
		for _, port := range service.Spec.Ports {
			if port.NodePort != 0 && (port.Protocol == corev1.ProtocolTCP || port.Protocol == "") {
				want[port.NodePort] = port
			}
		}
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	for number, np := range p.ports {
		if np.namespace != service.Namespace || np.service != service.Name {
			continue
		}
		if port, ok := want[number]; ok && port.Name == np.port.Name && port.Port == np.port.Port {
			delete(want, number)
			continue
		}
		np.listener.Close()
		delete(p.ports, number)
		klog.Infof("kube-proxy: node port %d of %s/%s closed", number, service.Namespace, service.Name)
	}
	for number, port := range want {
		if other, taken := p.ports[number]; taken {
			// The other Service's update has not arrived yet; a later event or the resync
			// brings this one back.
			klog.Warningf("kube-proxy: node port %d of %s/%s still held by %s/%s", number, service.Namespace, service.Name, other.namespace, other.service)
			continue
		}
		l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(int(number))))
		if err != nil {
			klog.Errorf("kube-proxy: node port %d of %s/%s: %v", number, service.Namespace, service.Name, err)
			continue
		}
		np := &nodePort{namespace: service.Namespace, service: service.Name, port: port, listener: l}
		p.ports[number] = np
		go p.accept(np)
		klog.Infof("kube-proxy: node port %d of %s/%s (port %d) listening", number, service.Namespace, service.Name, port.Port)
	}
}

func (p *kubeProxy) accept(np *nodePort) {
	for {
		conn, err := np.listener.Accept()
		if err != nil {
			return
		}
		go p.forward(conn, np)
	}
}

// forward passes conn to a ready endpoint of the node port's Service port, or closes it.
func (p *kubeProxy) forward(conn net.Conn, np *nodePort) {
	endpoints := p.readyEndpoints(np.namespace, np.service, np.port.Name)
	if len(endpoints) == 0 {
		klog.V(2).Infof("kube-proxy: %s/%s:%s has no ready endpoint", np.namespace, np.service, np.port.Name)
		conn.Close()
		return
	}
	ep := endpoints[rand.IntN(len(endpoints))]
	local, ok := p.backends.Lookup(ep.ip, ep.port)
	if !ok {
		klog.V(2).Infof("kube-proxy: nothing serves endpoint %s of %s/%s", backendKey(ep.ip, ep.port), np.namespace, np.service)
		conn.Close()
		return
	}
	pipe(conn, local)
}

type podEndpoint struct {
	ip   string
	port int32
}

// readyEndpoints are the ready endpoints of a Service port in its EndpointSlices. As in
// kube-proxy, a slice's port is matched by the Service port's name, and an endpoint whose
// ready condition is unknown counts as ready (the API's advice for consumers).
func (p *kubeProxy) readyEndpoints(namespace, service, portName string) []podEndpoint {
	slices, err := p.slices.EndpointSlices(namespace).List(labels.SelectorFromSet(labels.Set{discoveryv1.LabelServiceName: service}))
	if err != nil {
		return nil
	}
	var out []podEndpoint
	for _, slice := range slices {
		var port int32
		for _, sp := range slice.Ports {
			name := ""
			if sp.Name != nil {
				name = *sp.Name
			}
			protocol := corev1.ProtocolTCP
			if sp.Protocol != nil {
				protocol = *sp.Protocol
			}
			if name == portName && protocol == corev1.ProtocolTCP && sp.Port != nil {
				port = *sp.Port
			}
		}
		if port == 0 {
			continue
		}
		for _, ep := range slice.Endpoints {
			if ep.Conditions.Ready != nil && !*ep.Conditions.Ready || len(ep.Addresses) == 0 {
				continue
			}
			out = append(out, podEndpoint{ip: ep.Addresses[0], port: port})
		}
	}
	return out
}

func pipe(conn net.Conn, target string) { pipeTo(conn, "tcp", target) }

// pipeTo copies bytes both ways between conn and a new connection to target.
func pipeTo(conn net.Conn, network, target string) { pipePrefixed(conn, nil, network, target) }

// pipePrefixed is pipeTo for a conn whose first bytes, prefix, were already read from it.
func pipePrefixed(conn net.Conn, prefix []byte, network, target string) {
	defer conn.Close()
	upstream, err := net.DialTimeout(network, target, 5*time.Second)
	if err != nil {
		return
	}
	defer upstream.Close()
	if len(prefix) > 0 {
		if _, err := upstream.Write(prefix); err != nil {
			return
		}
	}
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { _, _ = io.Copy(upstream, conn); closeWrite(upstream); wg.Done() }()
	go func() { _, _ = io.Copy(conn, upstream); closeWrite(conn); wg.Done() }()
	wg.Wait()
}

func closeWrite(c net.Conn) {
	if t, ok := c.(interface{ CloseWrite() error }); ok {
		_ = t.CloseWrite()
	}
}
