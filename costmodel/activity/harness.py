"""The C++ harness of the gate-level simulation (:data:`HARNESS`, compiled with the verilated
netlist by :mod:`costmodel.activity.gatesim`) and the Verilator trace flags. The text is part of
the build cache key: any edit rebuilds every gate-level model."""

from hw.verilator import PAYLOAD_IO

__all__ = ["HARNESS", "TRACE_FLAGS"]

HARNESS = r"""
// paretofab activity harness (see costmodel/activity/): hw.sim stream protocol, one VCD sample
// per cycle (inputs of the cycle applied and settled, before the rising edge). The VCD stream is
// not stored: CountFile keeps its header and counts, per signal code, the changes after the
// first sample (scalars: one per change line; vectors: per bit, LSB 0).
#include "Vpf_top.h"
#include "verilated.h"
#include "verilated_vcd_c.h"
#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <string>
#include <unordered_map>
#include <vector>

""" + PAYLOAD_IO + r"""
class CountFile final : public VerilatedVcdFile {
    FILE* m_out = nullptr;
    std::string m_line;
    bool m_head = true;
    int m_stamps = 0;
    std::unordered_map<std::string, int64_t> m_scalar;
    std::unordered_map<std::string, std::string> m_last;
    std::unordered_map<std::string, std::vector<int64_t>> m_vector;

    void line(const std::string& s) {
        if (m_head) {
            std::fputs(s.c_str(), m_out);
            std::fputc('\n', m_out);
            if (s.find("$enddefinitions") != std::string::npos) {
                m_head = false;
                std::fputs("$counts\n", m_out);
            }
            return;
        }
        if (s.empty()) return;
        const char c = s[0];
        if (c == '#') {
            ++m_stamps;
        } else if (c == '0' || c == '1') {
            if (m_stamps >= 2) ++m_scalar[s.substr(1)];
        } else if (c == 'b') {
            const std::size_t sp = s.find(' ');
            if (sp == std::string::npos) return;
            const std::string val = s.substr(1, sp - 1), code = s.substr(sp + 1);
            auto it = m_last.find(code);
            if (it != m_last.end() && m_stamps >= 2) {
                const std::string& old = it->second;
                auto& t = m_vector[code];
                const std::size_t n = std::max(val.size(), old.size());
                if (t.size() < n) t.resize(n, 0);
                for (std::size_t j = 0; j < n; ++j) {
                    const char a = j < val.size() ? val[val.size() - 1 - j] : '0';
                    const char b = j < old.size() ? old[old.size() - 1 - j] : '0';
                    if (a != b) ++t[j];
                }
            }
            m_last[code] = val;
        }
    }

public:
    bool open(const std::string& name) override {
        m_out = std::fopen(name.c_str(), "w");
        return m_out != nullptr;
    }
    ssize_t write(const char* buf, ssize_t len) override {
        for (ssize_t i = 0; i < len; ++i) {
            if (buf[i] == '\n') {
                line(m_line);
                m_line.clear();
            } else {
                m_line.push_back(buf[i]);
            }
        }
        return len;
    }
    void close() override {
        if (!m_out) return;
        if (!m_line.empty()) line(m_line);
        m_line.clear();
        for (const auto& kv : m_scalar) std::fprintf(m_out, "S %lld %s\n", (long long)kv.second, kv.first.c_str());
        for (const auto& kv : m_vector)
            for (std::size_t j = 0; j < kv.second.size(); ++j)
                if (kv.second[j]) std::fprintf(m_out, "V %lld %zu %s\n", (long long)kv.second[j], j, kv.first.c_str());
        std::fclose(m_out);
        m_out = nullptr;
    }
};

// counters[0] = cycles run, [1] = inputs accepted, [2] = outputs collected. Returns 0, or 1 when
// the inputs were not all accepted within max_cycles, 2 when the count file cannot be written.
extern "C" __attribute__((visibility("default")))
int pf_trace(const uint32_t* in_words, int64_t n_in, int64_t drain, const char* count_path,
             uint32_t* out_words, int64_t max_out, int64_t max_cycles, int64_t* counters) {
    VerilatedContext ctx;
    ctx.traceEverOn(true);
    Vpf_top top(&ctx, "top");
    CountFile counts;
    VerilatedVcdC tfp(&counts);
    top.trace(&tfp, 99);
    tfp.open(count_path);
    if (!tfp.isOpen()) return 2;
    top.clk = 0;
    top.rst = 0;
    top.in_valid = 0;
    top.out_ready = 1;
    top.eval();
    int64_t k = 0, nout = 0, c = 0, idle = 0;
    while (c < max_cycles && (k < n_in || idle < drain)) {
        const bool valid = k < n_in;
        top.in_valid = valid;
        if (valid) put(top.in_data, in_words + k * PF_IN_WORDS);
        top.out_ready = 1;
        top.clk = 0;
        top.eval();
        tfp.dump((uint64_t)c);
        const bool fire = valid && top.in_ready;
        if (top.out_valid) {
            if (nout < max_out) get(top.out_data, out_words + nout * PF_OUT_WORDS);
            ++nout;
        }
        top.clk = 1;
        top.eval();
        if (fire) ++k;
        if (!valid) ++idle;
        ++c;
    }
    tfp.close();
    top.final();
    counters[0] = c;
    counters[1] = k;
    counters[2] = nout;
    return k == n_in ? 0 : 1;
}
"""

TRACE_FLAGS = ["--trace", "--trace-depth", "3"]
