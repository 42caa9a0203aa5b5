// dns.go: cluster DNS for the in-process K3K controller, as CoreDNS gives it in its pod. K3K
// dials Services by name (its StatefulSet controller reads the bootstrap data from
// https://k3k-<n>-service.<ns> and removes a server's etcd member through
// https://k3k-<n>-service.<ns>:2379 before it releases a server pod's finalizer). This
// answers A queries for <service>.<namespace>[.svc[.cluster.local]] with the Service's
// ClusterIP from a watch of Services, and NXDOMAIN for everything else; realhost's process
// resolves names through it (net.DefaultResolver), after /etc/hosts.

package main

import (
	"context"
	"net"
	"strings"

	"golang.org/x/net/dns/dnsmessage"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	listers "k8s.io/client-go/listers/core/v1"
	"k8s.io/klog/v2"
)

type clusterDNS struct {
	services listers.ServiceLister
}

// startClusterDNS serves DNS on a loopback UDP port and makes this process resolve through it.
func startClusterDNS(ctx context.Context, client kubernetes.Interface) error {
	factory := informers.NewSharedInformerFactory(client, 0)
	d := &clusterDNS{services: factory.Core().V1().Services().Lister()}
	factory.Start(ctx.Done())
	factory.WaitForCacheSync(ctx.Done())
	conn, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	go func() {
		<-ctx.Done()
		conn.Close()
	}()
	go d.serve(conn)
	addr := conn.LocalAddr().String()
	net.DefaultResolver = &net.Resolver{
		PreferGo: true,
		Dial: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var dialer net.Dialer
			return dialer.DialContext(ctx, "udp", addr)
		},
	}
	return nil
}

func (d *clusterDNS) serve(conn net.PacketConn) {
	buf := make([]byte, 1500)
	for {
		n, from, err := conn.ReadFrom(buf)
		if err != nil {
			return
		}
		reply, err := d.answer(buf[:n])
		if err != nil {
			klog.V(2).Infof("dns: %v", err)
			continue
		}
		_, _ = conn.WriteTo(reply, from)
	}
}

func (d *clusterDNS) answer(query []byte) ([]byte, error) {
	var parser dnsmessage.Parser
	header, err := parser.Start(query)
	if err != nil {
		return nil, err
	}
	question, err := parser.Question()
	if err != nil {
		return nil, err
	}
	header.Response = true
	header.Authoritative = true
	header.RecursionAvailable = false
	ip := d.lookup(question.Name.String())
	if ip == nil {
		header.RCode = dnsmessage.RCodeNameError
	}
	builder := dnsmessage.NewBuilder(nil, header)
	builder.EnableCompression()
	if err := builder.StartQuestions(); err != nil {
		return nil, err
	}
	if err := builder.Question(question); err != nil {
		return nil, err
	}
	if ip != nil && question.Type == dnsmessage.TypeA {
		if err := builder.StartAnswers(); err != nil {
			return nil, err
		}
		var a dnsmessage.AResource
		copy(a.A[:], ip.To4())
		if err := builder.AResource(dnsmessage.ResourceHeader{Name: question.Name, Class: dnsmessage.ClassINET, TTL: 5}, a); err != nil {
			return nil, err
		}
	}
	return builder.Finish()
}

// lookup finds the ClusterIP of <service>.<namespace>, optionally followed by .svc,
// .svc.cluster.local or a search domain of the machine's resolver configuration.
func (d *clusterDNS) lookup(name string) net.IP {
	labels := strings.Split(strings.TrimSuffix(strings.ToLower(name), "."), ".")
	if len(labels) < 2 {
		return nil
	}
	rest := labels[2:]
	if len(rest) > 0 && rest[0] != "svc" {
		return nil
	}
	if len(rest) > 1 && strings.Join(rest[1:], ".") != "cluster.local" {
		return nil
	}
	svc, err := d.services.Services(labels[1]).Get(labels[0])
	if err != nil || svc.Spec.ClusterIP == "" || svc.Spec.ClusterIP == corev1.ClusterIPNone {
		return nil
	}
	ip := net.ParseIP(svc.Spec.ClusterIP).To4()
	return ip
}
