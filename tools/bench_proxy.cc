#include "bench_proxy.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <memory>
#include <thread>
#include <vector>

#include "absl/strings/str_format.h"
#include "etcd/client.h"

namespace kvsync::bench {
namespace {

using Clock = std::chrono::steady_clock;

struct KvLatencyFlags {
  std::string endpoints;
  std::string op = "put";
  std::string prefix = "/bench-kv/";
  int64_t ops = 20000;
  int clients = 16;
  int keys = 1000;
  int value_size = 256;
};

int RunKvLatency(const KvLatencyFlags& f) {
  if (f.op != "put" && f.op != "range") {
    std::fprintf(stderr, "kvsync-bench kv-latency: error: --op must be put or range\n");
    return 2;
  }
  etcd::ClientOptions o;
  o.endpoints = etcd::SplitEndpoints(f.endpoints);
  o.name = "bench";
  auto client = etcd::Client::Create(o);
  if (!client.ok()) {
    std::fprintf(stderr, "kvsync-bench kv-latency: error: %s\n",
                 std::string(client.status().message()).c_str());
    return 2;
  }
  etcd::Client* c = client->get();
  std::string value(static_cast<size_t>(f.value_size), 'v');
  auto key = [&](int64_t i) { return absl::StrFormat("%s%06d", f.prefix, i % f.keys); };
  if (f.op == "range") {  // the keys read must exist
    for (int i = 0; i < f.keys; ++i) {
      if (!c->Put(key(i), value).ok()) {
        std::fprintf(stderr, "kvsync-bench kv-latency: error: preparing keys failed\n");
        return 1;
      }
    }
  }
  std::atomic<int64_t> next{0};
  std::atomic<int64_t> errors{0};
  std::vector<std::vector<int32_t>> lat(static_cast<size_t>(f.clients));
  Clock::time_point start = Clock::now();
  std::vector<std::thread> threads;
  threads.reserve(f.clients);
  for (int t = 0; t < f.clients; ++t) {
    threads.emplace_back([&, t] {
      std::vector<int32_t>& mine = lat[static_cast<size_t>(t)];
      for (int64_t i = next.fetch_add(1); i < f.ops; i = next.fetch_add(1)) {
        Clock::time_point t0 = Clock::now();
        bool ok;
        if (f.op == "put") {
          ok = c->Put(key(i), value).ok();
        } else {
          etcd::RangeRequest r;
          r.key = key(i);
          ok = c->Range(r).ok();
        }
        if (!ok) ++errors;
        mine.push_back(static_cast<int32_t>(
            std::chrono::duration_cast<std::chrono::microseconds>(Clock::now() - t0).count()));
      }
    });
  }
  for (auto& th : threads) th.join();
  double seconds = std::chrono::duration<double>(Clock::now() - start).count();
  std::vector<int32_t> all;
  for (auto& v : lat) all.insert(all.end(), v.begin(), v.end());
  std::sort(all.begin(), all.end());
  auto q = [&](double p) {
    return all.empty() ? 0.0 : all[static_cast<size_t>(p * (all.size() - 1))] / 1000.0;
  };
  std::printf(
      "{\"command\":\"kv-latency\",\"op\":\"%s\",\"ops\":%lld,\"clients\":%d,\"errors\":%lld,"
      "\"seconds\":%.3f,\"ops_per_s\":%.0f,\"p50_ms\":%.3f,\"p99_ms\":%.3f,\"max_ms\":%.3f}\n",
      f.op.c_str(), static_cast<long long>(f.ops), f.clients, static_cast<long long>(errors.load()),
      seconds, seconds > 0 ? f.ops / seconds : 0.0, q(0.5), q(0.99), q(1.0));
  return errors.load() == 0 ? 0 : 1;
}

}  // namespace

void AddKvLatencyCommand(CLI::App* app, std::map<std::string, std::function<int()>>* commands) {
  auto f = std::make_shared<KvLatencyFlags>();
  CLI::App* cmd = app->add_subcommand(
      "kv-latency", "put or range latency (p50/p99/max) and throughput against one endpoint");
  cmd->add_option("--endpoints", f->endpoints, "a member or a grpc-proxy")->required();
  cmd->add_option("--op", f->op, "put or range")->default_val("put");
  cmd->add_option("--ops", f->ops, "operations in total")
      ->default_val(20000)
      ->check(CLI::Range(int64_t{1}, int64_t{1'000'000'000}));
  cmd->add_option("--clients", f->clients, "concurrent requests (threads, one shared channel)")
      ->default_val(16)
      ->check(CLI::Range(1, 1024));
  cmd->add_option("--keys", f->keys, "distinct keys cycled through")
      ->default_val(1000)
      ->check(CLI::Range(1, 10'000'000));
  cmd->add_option("--value-size", f->value_size, "bytes per value")
      ->default_val(256)
      ->check(CLI::Range(0, 1 << 20));
  cmd->add_option("--prefix", f->prefix, "key prefix")->default_val("/bench-kv/");
  (*commands)["kv-latency"] = [f] { return RunKvLatency(*f); };
}

}  // namespace kvsync::bench
