// Hostile pickles against the restricted unpickler and the torch zip reader: code execution attempts
// (os.system, builtins.eval, subprocess.Popen, torch.load recursion, a forbidden call hidden in an allow-listed
// call's arguments), allow-listed callables with hostile arguments, absurd storages and views, a zip bomb entry,
// nesting 10^5 deep, cycles and shared-subtree bombs. Each is refused with its exact message, nothing runs (no
// marker file appears) and the process's peak memory stays small.
// Data: tests/data/io/make_hostile.py (see SOURCE.md); the rest are byte strings below.
#include <gtest/gtest.h>
#include <sys/resource.h>

#include <filesystem>
#include <string>
#include <vector>

#include "io/pickle.h"
#include "io/tensor_source.h"
#include "test_support.h"
#include "util/error.h"

using gill::test::bytes;
using gill::test::io_data;
using gill::test::expect_error;

using namespace gill;
using gill::test::data_dir;

namespace {

std::string repeat(const std::string& s, size_t n) {
  std::string out;
  out.reserve(s.size() * n);
  for (size_t k = 0; k < n; ++k) out += s;
  return out;
}

long peak_rss_mb() {
  rusage ru{};
  ::getrusage(RUSAGE_SELF, &ru);
  return ru.ru_maxrss / 1024;
}

const char* const kMarkers[] = {"/tmp/gill_pwned_popen", "/tmp/gill_pwned_eval", "/tmp/gill_pwned_nested",
                                "/tmp/gill_pwned_by_test"};

void expect_file_refused(const std::string& name, ErrorCode code, const std::string& tail) {
  const auto p = io_data(name);
  expect_error([&] { io::open_tensors(p); }, code, p.string() + tail);
}

}  // namespace

TEST(PickleHostile, CodeExecutionIsRefused) {
  for (const char* m : kMarkers) std::filesystem::remove(m);
  const std::string allow = "': not in the allow-list of the restricted unpickler (at byte ";
  expect_file_refused("evil_popen.pth.tar", ErrorCode::kSecurity,
                      " (archive/data.pkl): refused to load global 'subprocess.Popen" + allow + "47)");
  expect_file_refused("evil_eval.pth.tar", ErrorCode::kSecurity,
                      " (archive/data.pkl): refused to load global 'builtins.eval" + allow + "13)");
  expect_file_refused("evil_torch_load.pth.tar", ErrorCode::kSecurity,
                      " (archive/data.pkl): refused to load global 'torch.serialization.load" + allow + "22)");
  // os.system as the ARGUMENT of an allow-listed call: refused when its global is read, before any call.
  expect_file_refused("evil_nested_arg.pth.tar", ErrorCode::kSecurity,
                      " (archive/data.pkl): refused to load global 'posix.system" + allow + "40)");
  // Same names through the other opcode forms.
  expect_error([&] { io::pickle::unpickle("csubprocess\ncheck_output\n.", "x.pkl"); }, ErrorCode::kSecurity,
               "x.pkl: refused to load global 'subprocess.check_output" + allow + "0)");
  expect_error([&] { io::pickle::unpickle("ctorch\nload\n.", "x.pkl"); }, ErrorCode::kSecurity,
               "x.pkl: refused to load global 'torch.load" + allow + "0)");
  // INST / OBJ (protocol 0/1 ways to call a class) are not opcodes the reader knows at all.
  expect_error([&] { io::pickle::unpickle("(ios\nsystem\n.", "x.pkl"); }, ErrorCode::kUnsupported,
               "x.pkl: pickle opcode 0x69 ('i') is not supported by the restricted unpickler (at byte 1)");
  // EXT1..4 (the copyreg extension registry) could name any callable: unsupported.
  expect_error(
      [&] {
        io::pickle::unpickle(bytes({0x80, 2, 0x82, 1, '.'}), "x.pkl");
      },
      ErrorCode::kUnsupported,
      "x.pkl: pickle opcode 0x82 ('?') is not supported by the restricted unpickler (at byte 2)");
  for (const char* m : kMarkers) EXPECT_FALSE(std::filesystem::exists(m)) << m << ": something was executed";
}

TEST(PickleHostile, AllowListedCallsWithHostileArguments) {
  const std::string w = " (archive/data.pkl): ";
  expect_file_refused("ordereddict_args.pth.tar", ErrorCode::kFormat,
                      w + "OrderedDict with arguments is not supported (at byte 60)");
  expect_file_refused("reconstruct_not_ndarray.pth.tar", ErrorCode::kFormat,
                      w + "numpy.core.multiarray._reconstruct: only numpy.ndarray can be reconstructed (at byte 131)");
  expect_file_refused("codecs_rot13.pth.tar", ErrorCode::kUnsupported, w + "_codecs.encode to 'rot13' (at byte 56)");
  expect_file_refused("rebuild_tensor_not_storage.pth.tar", ErrorCode::kFormat,
                      w + "torch._utils._rebuild_tensor_v2: argument 0 should be a storage (at byte 116)");
  // A REDUCE whose callable is not a global, and one whose arguments are not a tuple.
  expect_error(
      [&] {
        io::pickle::unpickle(bytes({0x80, 2, 'N', ')', 'R', '.'}), "x.pkl");
      },
      ErrorCode::kFormat, "x.pkl: REDUCE on a None (at byte 4)");
  expect_error([&] { io::pickle::unpickle("ccollections\nOrderedDict\n]R.", "x.pkl"); }, ErrorCode::kFormat,
               "x.pkl: REDUCE arguments are not a tuple (at byte 26)");
}

TEST(PickleHostile, AbsurdSizesAreRefusedWithoutAllocating) {
  const long before = peak_rss_mb();
  expect_file_refused("huge_storage.pth.tar", ErrorCode::kFormat,
                      ": tensor 'w': storage 'archive/data/0' holds 16 bytes but its header says 1000000000000 x 4 "
                      "bytes");
  expect_file_refused("huge_view.pth.tar", ErrorCode::kFormat,
                      ": tensor 'w' of shape [1073741824, 1073741824] has too many elements");
  expect_file_refused("huge_offset.pth.tar", ErrorCode::kFormat,
                      ": tensor 'w' of shape [2] at offset 4611686018427387904 does not fit its storage "
                      "'archive/data/0' of 4 elements");
  // 64 MiB of zeros deflated into 64 KiB: compressed entries are never inflated.
  expect_file_refused("zip_bomb.pth.tar", ErrorCode::kUnsupported,
                      ": entry 'archive/data/0' is compressed (method 8); only stored entries (method 0) are "
                      "supported");
  // Length prefixes far past the end of the data: refused before reading (or allocating) anything.
  expect_error(
      [&] {
        io::pickle::unpickle(bytes({0x80, 4, 0x8e, 0, 0, 0, 0, 0, 0, 0, 0x40, '.'}), "x.pkl");
      },
      ErrorCode::kFormat, "x.pkl: pickle is truncated (at byte 2)");
  expect_error(
      [&] {
        io::pickle::unpickle(bytes({0x80, 2, 'X', 0xff, 0xff, 0xff, 0xff, '.'}), "x.pkl");
      },
      ErrorCode::kFormat, "x.pkl: pickle is truncated (at byte 2)");
  // A memo index of 2^32 - 1 would be a 64 GiB table; even 2^21 (a 32 MiB table from 9 bytes) is refused.
  expect_error(
      [&] {
        io::pickle::unpickle(bytes({0x80, 2, 'N', 'r', 0xff, 0xff, 0xff, 0xff, '.'}), "x.pkl");
      },
      ErrorCode::kFormat, "x.pkl: memo index 4294967295 is out of range (0 entries so far) (at byte 3)");
  expect_error(
      [&] {
        io::pickle::unpickle(bytes({0x80, 2, 'N', 'r', 0, 0, 0x20, 0, '.'}), "x.pkl");
      },
      ErrorCode::kFormat, "x.pkl: memo index 2097152 is out of range (0 entries so far) (at byte 3)");
  // A list shared 2^40 ways through the memo: flattening it would visit 2^40 values.
  expect_file_refused("shared_bomb.pth.tar", ErrorCode::kFormat,
                      ": more than 1048576 nested values (shared containers expanding without bound?)");
  EXPECT_LT(peak_rss_mb() - before, 200) << "peak memory grew by " << peak_rss_mb() - before << " MB";
}

TEST(PickleHostile, NestingTenToTheFiveDeep) {
  const size_t n = 100000;
  const long before = peak_rss_mb();
  // MARKs.
  expect_error([&] { io::pickle::unpickle(repeat("(", n), "x.pkl"); }, ErrorCode::kFormat,
               "x.pkl: nesting deeper than 200 (at byte 200)");
  // Lists in lists with no MARK at all: EMPTY_LIST x n, then APPEND x n.
  expect_error(
      [&] {
        io::pickle::unpickle(bytes({0x80, 2}) + repeat("]", n) + repeat("a", n - 1) + ".", "x.pkl");
      },
      ErrorCode::kFormat, "x.pkl: containers nested deeper than 200 (at byte 100202)");
  // Dicts in dicts: EMPTY_DICT x n, then (key, SETITEM) x n.
  expect_error(
      [&] {
        io::pickle::unpickle(bytes({0x80, 2}) + repeat("}", n) + repeat(bytes({'K', 1}) + "s", n) + ".", "x.pkl");
      },
      ErrorCode::kFormat, "x.pkl: containers nested deeper than 200 (at byte 100604)");
  // Tuples of tuples: None, then TUPLE1 x n.
  expect_error(
      [&] {
        io::pickle::unpickle(bytes({0x80, 2, 'N'}) + repeat(bytes({0x85}), n) + ".", "x.pkl");
      },
      ErrorCode::kFormat, "x.pkl: containers nested deeper than 200 (at byte 203)");
  // Deep but legal (100 levels) still loads.
  auto v = io::pickle::unpickle(bytes({0x80, 2}) + repeat("]", 100) + repeat("a", 99) + ".", "x.pkl");
  EXPECT_EQ(v->kind, io::pickle::Kind::kList);
  EXPECT_LT(peak_rss_mb() - before, 200);
}

// d0 = {'k': 1}; d(i+1) = {'a': d(i), 'b': d(i)} for n levels, every d(i) fetched from the memo: n + 2 distinct values
// that flatten to 2^n leaves (3 * 2^n - 1 visits).
std::string shared_dicts(int n) {
  auto key = [](char c) { return bytes({'X', 1, 0, 0, 0, c}); };
  std::string p = bytes({0x80, 2, '}'}) + key('k') + bytes({'K', 1, 's', 'q', 0, '0'});  // BINPUT 0, POP
  for (int i = 0; i < n; ++i)
    p += bytes({'}'}) + key('a') + bytes({'h', i, 's'}) + key('b') + bytes({'h', i, 's', 'q', i + 1, '0'});
  return p + bytes({'h', n, '.'});
}

TEST(PickleHostile, SharedContainersAreRefusedBeforeExpanding) {
  // Sharing that expands modestly (2^14 leaves from 16 values) flattens, every path spelled out.
  std::vector<std::pair<std::string, io::pickle::ValuePtr>> leaves;
  io::pickle::flatten(io::pickle::unpickle(shared_dicts(14), "x.pkl"), "", leaves);
  ASSERT_EQ(leaves.size(), 16384u);
  EXPECT_EQ(leaves.front().first, "a.a.a.a.a.a.a.a.a.a.a.a.a.a.k");
  EXPECT_EQ(leaves.back().first, "b.b.b.b.b.b.b.b.b.b.b.b.b.b.k");
  EXPECT_EQ(leaves[1].first, "a.a.a.a.a.a.a.a.a.a.a.a.a.b.k");
  // One level more passes 2^16 visits from 17 distinct values: refused, counted without expanding.
  leaves.clear();
  expect_error([&] { io::pickle::flatten(io::pickle::unpickle(shared_dicts(15), "x.pkl"), "", leaves); },
               ErrorCode::kFormat,
               "17 distinct values expand to 98303 nested values (shared containers expanding without bound?)");
  EXPECT_TRUE(leaves.empty());
  // Past 2^20 visits: refused whatever the number of distinct values.
  expect_error([&] { io::pickle::flatten(io::pickle::unpickle(shared_dicts(60), "x.pkl"), "", leaves); },
               ErrorCode::kFormat, "more than 1048576 nested values (shared containers expanding without bound?)");
  // Tied weights: one tensor-like leaf under two keys is not expansion.
  leaves.clear();
  io::pickle::flatten(io::pickle::unpickle(shared_dicts(1), "x.pkl"), "", leaves);
  ASSERT_EQ(leaves.size(), 2u);
  EXPECT_EQ(leaves[0].first, "a.k");
  EXPECT_EQ(leaves[1].first, "b.k");
  EXPECT_EQ(leaves[0].second, leaves[1].second);
}

TEST(PickleHostile, CyclesAreRefused) {
  // EMPTY_LIST, DUP, APPEND: a list that contains itself.
  expect_error(
      [&] {
        io::pickle::unpickle(bytes({0x80, 2, ']', '2', 'a', '.'}), "x.pkl");
      },
      ErrorCode::kFormat, "x.pkl: a list cannot contain itself (at byte 4)");
  // L0 = [] (memo 0); L1 = [L0]; then L1 appended into L0 (fetched from the memo): L0 is already inside L1.
  expect_error(
      [&] {
        io::pickle::unpickle(bytes({0x80, 2, ']', 'q', 0, ']', 'h', 0, 'a', 'a', '.'}), "x.pkl");
      },
      ErrorCode::kFormat,
      "x.pkl: APPEND on a list that is already inside another value (cyclic structures are refused) (at "
      "byte 9)");
  // The same through a dict value.
  // D = {} (memo 0); key 1; L = [D]; then D[1] = L.
  expect_error(
      [&] {
        io::pickle::unpickle(bytes({0x80, 2, '}', 'q', 0, 'K', 1, ']', 'h', 0, 'a', 's', '.'}), "x.pkl");
      },
      ErrorCode::kFormat,
      "x.pkl: SETITEM on a dict that is already inside another value (cyclic structures are refused) (at byte 11)");
}

TEST(PickleHostile, FuzzRegressions) {
  // A subnormal BINFLOAT: repr() used std::stod, which throws out_of_range for it.
  auto v = io::pickle::unpickle(bytes({'G', 0, 0, 0x7f, 0xfc, 0x3a, 0x79, 0xc8, 0xf8, '.'}), "x.pkl");
  ASSERT_EQ(v->kind, io::pickle::Kind::kFloat);
  EXPECT_EQ(v->repr(), "6.95255548031457e-310");  // Python: repr(struct.unpack(">d", ...)[0])
}
