// The etcd and none backends: stateless, so they live together.
#include "common/digest.h"
#include "ownership/store.h"

namespace kvsync::ownership {
namespace {

class NoneStore : public Store {
 public:
  std::string_view backend() const override { return "none"; }
  bool available() const override { return true; }
  void AppendPut(const std::string& key, const std::string& value,
                 std::vector<etcd::Op>* ops) const override {
    ops->push_back(etcd::Op::Put(key, value));
  }
  void AppendDelete(const std::string& key, std::vector<etcd::Op>* ops) const override {
    ops->push_back(etcd::Op::Delete(key));
  }
  void RecordWrites(const std::vector<std::string>&) override {}
  void ForgetDeletes(const std::vector<std::string>&) override {}
  std::vector<Owner> Lookup(const std::vector<std::string>& keys) override {
    return std::vector<Owner>(keys.size(), Owner::kOwned);
  }
};

class EtcdMarkStore : public Store {
 public:
  explicit EtcdMarkStore(std::string mark_prefix) : mark_prefix_(std::move(mark_prefix)) {}

  std::string_view backend() const override { return "etcd"; }
  bool available() const override { return true; }
  void AppendPut(const std::string& key, const std::string& value,
                 std::vector<etcd::Op>* ops) const override {
    ops->push_back(etcd::Op::Put(key, value));
    ops->push_back(etcd::Op::Put(MarkKey(key), ""));
  }
  // The mark's version is 0 exactly when it does not exist, so "version > 0" reads "the mark
  // exists" and the delete happens in the same revision as the check.
  void AppendDelete(const std::string& key, std::vector<etcd::Op>* ops) const override {
    std::string mark = MarkKey(key);
    etcd::TxnRequest guarded;
    guarded.compares.push_back(etcd::Compare{mark, etcd::Compare::Target::kVersion,
                                             etcd::Compare::Result::kGreater, 0, ""});
    guarded.success.push_back(etcd::Op::Delete(key));
    guarded.success.push_back(etcd::Op::Delete(std::move(mark)));
    ops->push_back(etcd::Op::Txn(std::move(guarded)));
  }
  void RecordWrites(const std::vector<std::string>&) override {}
  void ForgetDeletes(const std::vector<std::string>&) override {}
  std::vector<Owner> Lookup(const std::vector<std::string>& keys) override {
    return std::vector<Owner>(keys.size(), Owner::kOwned);
  }
  // Marks are named by the key's digest, so a 1 KB Dubbo key costs a ~60-byte mark.
  std::string MarkKey(const std::string& key) const override {
    return MarkPrefix() + common::DigestHex(common::KeyDigest(key));
  }
  std::string MarkPrefix() const override { return mark_prefix_ + "/"; }

 private:
  const std::string mark_prefix_;
};

}  // namespace

std::unique_ptr<Store> NewNoneStore() { return std::make_unique<NoneStore>(); }

std::unique_ptr<Store> NewEtcdStore(std::string mark_prefix) {
  return std::make_unique<EtcdMarkStore>(std::move(mark_prefix));
}

}  // namespace kvsync::ownership
