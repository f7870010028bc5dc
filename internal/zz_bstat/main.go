package main

import (
	"fmt"
	"os"

	bolt "go.etcd.io/bbolt"
)

func main() {
	db, err := bolt.Open(os.Args[1], 0600, &bolt.Options{ReadOnly: true})
	if err != nil {
		panic(err)
	}
	defer db.Close()
	db.View(func(tx *bolt.Tx) error {
		fmt.Println("size", tx.Size(), "pages", tx.Size()/4096)
		return tx.ForEach(func(name []byte, b *bolt.Bucket) error {
			s := b.Stats()
			fmt.Printf("%-10s keys=%d depth=%d branchP=%d branchOver=%d leafP=%d leafOver=%d leafAlloc=%d leafInuse=%d buckets=%d inline=%d\n", name, s.KeyN, s.Depth, s.BranchPageN, s.BranchOverflowN, s.LeafPageN, s.LeafOverflowN, s.LeafAlloc, s.LeafInuse, s.BucketN, s.InlineBucketN)
			return nil
		})
	})
	st := db.Stats()
	fmt.Println("free pages", st.FreePageN, "pending", st.PendingPageN, "freelist bytes", st.FreelistInuse)
}
