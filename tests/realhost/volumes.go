// volumes.go: what plays K3s's local-path-provisioner: the default StorageClass `local-path`
// (WaitForFirstConsumer), and for each claim the scheduler has placed on a node, a PV on that
// node for the PV controller to bind; a released PV is deleted with its directory. A PV's
// directory under the data directory is where a virtual cluster keeps its datastore, so data
// lives exactly as long as the volume, as on a box.

package main

import (
	"context"
	"os"
	"path/filepath"
	"time"

	corev1 "k8s.io/api/core/v1"
	storagev1 "k8s.io/api/storage/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
	"k8s.io/klog/v2"
	"k8s.io/utils/ptr"
)

const (
	provisionerName  = "rancher.io/local-path"
	selectedNodeAnno = "volume.kubernetes.io/selected-node"
	provisionerAnno  = "volume.kubernetes.io/storage-provisioner"
	provisionedBy    = "pv.kubernetes.io/provisioned-by"
)

// Volumes provisions local-path volumes into dir.
type Volumes struct {
	client kubernetes.Interface
	dir    string
}

// VolumeDir is where the PV named pv keeps its data.
func (v *Volumes) VolumeDir(pv string) string { return filepath.Join(v.dir, pv) }

func startVolumes(ctx context.Context, client kubernetes.Interface, dir string) (*Volumes, error) {
	v := &Volumes{client: client, dir: dir}
	sc := &storagev1.StorageClass{
		ObjectMeta: metav1.ObjectMeta{
			Name:        "local-path",
			Annotations: map[string]string{"storageclass.kubernetes.io/is-default-class": "true"},
		},
		Provisioner:       provisionerName,
		ReclaimPolicy:     ptr.To(corev1.PersistentVolumeReclaimDelete),
		VolumeBindingMode: ptr.To(storagev1.VolumeBindingWaitForFirstConsumer),
	}
	if _, err := client.StorageV1().StorageClasses().Create(ctx, sc, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		return nil, err
	}
	factory := informers.NewSharedInformerFactory(client, 0)
	claims := factory.Core().V1().PersistentVolumeClaims().Informer()
	volumes := factory.Core().V1().PersistentVolumes().Informer()
	work := make(chan func(), 1024)
	if _, err := claims.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(obj any) { work <- func() { v.provision(ctx, obj) } },
		UpdateFunc: func(_, obj any) { work <- func() { v.provision(ctx, obj) } },
	}); err != nil {
		return nil, err
	}
	if _, err := volumes.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(obj any) { work <- func() { v.reclaim(ctx, obj) } },
		UpdateFunc: func(_, obj any) { work <- func() { v.reclaim(ctx, obj) } },
	}); err != nil {
		return nil, err
	}
	factory.Start(ctx.Done())
	go func() {
		for {
			select {
			case <-ctx.Done():
				return
			case f := <-work:
				f()
			}
		}
	}()
	return v, nil
}

func (v *Volumes) provision(ctx context.Context, obj any) {
	pvc, ok := obj.(*corev1.PersistentVolumeClaim)
	if !ok || pvc.Spec.VolumeName != "" || pvc.DeletionTimestamp != nil {
		return
	}
	node := pvc.Annotations[selectedNodeAnno]
	if pvc.Annotations[provisionerAnno] != provisionerName || node == "" {
		return
	}
	name := "pvc-" + string(pvc.UID)
	dir := v.VolumeDir(name)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		klog.Errorf("volume %s: %v", name, err)
		return
	}
	class := ""
	if pvc.Spec.StorageClassName != nil {
		class = *pvc.Spec.StorageClassName
	}
	pv := &corev1.PersistentVolume{
		ObjectMeta: metav1.ObjectMeta{Name: name, Annotations: map[string]string{provisionedBy: provisionerName}},
		Spec: corev1.PersistentVolumeSpec{
			Capacity:                      corev1.ResourceList{corev1.ResourceStorage: pvc.Spec.Resources.Requests[corev1.ResourceStorage]},
			AccessModes:                   pvc.Spec.AccessModes,
			PersistentVolumeReclaimPolicy: corev1.PersistentVolumeReclaimDelete,
			StorageClassName:              class,
			VolumeMode:                    pvc.Spec.VolumeMode,
			ClaimRef: &corev1.ObjectReference{
				Kind: "PersistentVolumeClaim", APIVersion: "v1",
				Namespace: pvc.Namespace, Name: pvc.Name, UID: pvc.UID,
			},
			PersistentVolumeSource: corev1.PersistentVolumeSource{
				HostPath: &corev1.HostPathVolumeSource{Path: "/var/lib/rancher/k3s/storage/" + name + "_" + pvc.Namespace + "_" + pvc.Name, Type: ptr.To(corev1.HostPathDirectoryOrCreate)},
			},
			NodeAffinity: &corev1.VolumeNodeAffinity{Required: &corev1.NodeSelector{NodeSelectorTerms: []corev1.NodeSelectorTerm{{
				MatchExpressions: []corev1.NodeSelectorRequirement{{Key: "kubernetes.io/hostname", Operator: corev1.NodeSelectorOpIn, Values: []string{node}}},
			}}}},
		},
	}
	if _, err := v.client.CoreV1().PersistentVolumes().Create(ctx, pv, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) && ctx.Err() == nil {
		klog.Errorf("creating %s: %v", name, err)
	}
}

func (v *Volumes) reclaim(ctx context.Context, obj any) {
	pv, ok := obj.(*corev1.PersistentVolume)
	if !ok || pv.Annotations[provisionedBy] != provisionerName {
		return
	}
	if pv.Status.Phase != corev1.VolumeReleased || pv.Spec.PersistentVolumeReclaimPolicy != corev1.PersistentVolumeReclaimDelete {
		return
	}
	// A virtual cluster may still be shutting down on this volume: give it a moment.
	time.Sleep(200 * time.Millisecond)
	if err := os.RemoveAll(v.VolumeDir(pv.Name)); err != nil {
		klog.Errorf("removing %s: %v", pv.Name, err)
	}
	if err := v.client.CoreV1().PersistentVolumes().Delete(ctx, pv.Name, metav1.DeleteOptions{}); err != nil && !apierrors.IsNotFound(err) && ctx.Err() == nil {
		klog.Errorf("deleting %s: %v", pv.Name, err)
	}
}
