// The offer catalog: what GPU machines each cloud sells, where, and for how much, read from the
// SkyPilot-format CSV files bundled in data/catalog/ (sources and quirks in its README.md).
//
// Files are read by column name (each cloud orders its columns differently) with an RFC-4180
// reader: quoted fields may hold commas, doubled quotes and line breaks; CRLF and LF both end a
// record. Every malformed row is reported as "FILE:LINE:COLUMN: field 'NAME': expected ..., got
// '...'".
//
// What becomes an Offer:
// - AWS, Azure, Lambda, RunPod: every row with an AcceleratorName, one offer per row, verbatim
//   (the catalog's anomalies such as Azure's 12-GPU ND96isr_H100_v5 or RunPod's L40S spot prices
//   above on-demand are kept). Rows without an accelerator are skipped. Rows with an empty Price
//   (AWS p5e.48xlarge, Azure NV*as_v4) are skipped: an Offer always has an on-demand price.
// - GCP prices a GPU machine in two parts: a host VM row (InstanceType set, AcceleratorName empty,
//   price for vCPU and memory only) plus an accelerator row (InstanceType empty, price for the GPUs
//   alone) in the same zone. We report what a user actually pays for:
//   * a2/a3/a4/g2 hosts have their GPUs built in. The GPU model and count come from the machine
//     name as the catalog README specifies (a2-highgpu/megagpu = A100, a2-ultragpu = A100-80GB,
//     a3-highgpu/edgegpu = H100, a3-megagpu = H100-MEGA, a3-ultragpu = H200, a4-highgpu = B200,
//     N in "-Ng" is the count; g2-standard-K = L4 with 1, 2 (K=24), 4 (K=48) or 8 (K=96) GPUs).
//     Each such host row is combined with the accelerator row of that model and count in the same
//     zone: price = host + GPUs, spot = host spot + GPU spot when both exist. A host with no
//     matching accelerator row in its zone, or with a zero host price (a4-highgpu-8g is unpriced
//     in the source), is skipped: we cannot state its real price.
//   * T4, P4, P100 and V100 attach to n1 VMs, whose prices are not in the bundled file. Their
//     accelerator rows are reported alone with instance_type kGcpAttachableInstance, 0 vCPUs and
//     0 GiB: the price is for the GPUs only and does NOT include the n1 host. This is the simplest
//     honest representation that still shows GCP's GPU prices; the name says what is missing.
//   * Accelerator rows of the other models are used only through their hosts.
//   * Rows with both InstanceType and AcceleratorName set are plain offers, as on other clouds.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/status.h"

namespace lepton::cloud {

struct Offer {
  std::string cloud;          // "aws", "gcp", "azure", "lambda", "runpod"
  std::string instance_type;  // provider's name; see kGcpAttachableInstance
  std::string gpu_model;      // canonical via core/gpu_model.h canonical_gpu_model()
  double gpu_count = 0;       // may be fractional for some clouds; keep double
  double vcpus = 0;           // 0 when unknown (GCP GPU-only rows)
  double memory_gib = 0;      // 0 when unknown (GCP GPU-only rows)
  double price_per_hour = 0;  // on-demand USD per hour for the whole offer
  std::optional<double> spot_price_per_hour;
  std::string region;
  std::string zone;  // may be empty (Lambda, Azure)
};

// The instance_type of a GCP GPU-only offer (T4/P4/P100/V100): the n1 host is not priced.
inline constexpr std::string_view kGcpAttachableInstance = "(attach to n1 VM; GPU price only)";

// The bundled catalog files, in load order; the cloud name is the prefix before '_'.
inline constexpr std::string_view kCatalogFiles[] = {"aws_v8.csv", "gcp_v8.csv", "azure_v6.csv",
                                                     "lambda_v8.csv", "runpod_v7.csv"};

// Parses one catalog's text; `file` names it in errors, `cloud` goes into every Offer (and "gcp"
// turns on the host + accelerator combination described above).
Result<std::vector<Offer>> parse_catalog(std::string_view content, std::string_view file,
                                         std::string_view cloud);
Result<std::vector<Offer>> load_catalog_file(const std::string& path, std::string_view cloud);
// Loads every file in kCatalogFiles from `dir`; a missing file is an error.
Result<std::vector<Offer>> load_catalog_dir(const std::string& dir);

struct OfferQuery {
  std::string gpu_model;  // empty: any; compared canonically and case-insensitively
  double gpu_count = 0;   // 0: any; otherwise exactly this many GPUs (like `sky show-gpus A100:8`)
  bool spot = false;      // only offers with a spot price, priced and sorted by it
  std::vector<std::string> clouds;   // empty: any; case-insensitive
  std::vector<std::string> regions;  // empty: any; matches an offer's region or zone
};

// The offers that fit `query`, cheapest first by the relevant price (spot or on-demand), ties
// broken by price per GPU-hour, then cloud, region, zone and instance type.
std::vector<Offer> find_offers(const std::vector<Offer>& offers, const OfferQuery& query);

// A pool: one offer launched as spot or on demand, e.g. "aws/us-east-1/p5.48xlarge/spot" (with
// the zone after the region when the offer has one). Capacity is limited, and capacity errors
// are remembered, per pool.
std::string offer_pool(const Offer& offer, bool spot);

// The relevant price divided by gpu_count; NaN when `spot` and the offer has no spot price.
double price_per_gpu_hour(const Offer& offer, bool spot);

// "H100:8", "A100", "a100-80gb:1": a model (canonicalised) and an optional whole GPU count >= 1.
// Only gpu_model and gpu_count are set.
Result<OfferQuery> parse_gpu_query(std::string_view text);

}  // namespace lepton::cloud
