// `monologue info PATH [--json] [--config-only]`: what a model directory holds and whether it loads.
// PATH is a model directory (config.json, or the legacy Moshi 7B layout) or a single Mimi .safetensors
// file (`--mimi-config FILE` for a non-released Mimi). Prints the model type, the architecture, parameter
// counts, files with sizes and dtypes, the Mimi summary and the generation/STT/TTS sections, and checks
// every weight file against its schema (the whole loading path short of running): any missing,
// truncated or mismatched file makes the command fail with the full list of problems.
#include <CLI/CLI.hpp>
#include <cstdint>
#include <filesystem>
#include <iostream>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "cli/command.h"
#include "core/config/model_config.h"
#include "core/io/checkpoint_view.h"
#include "core/io/safetensors.h"
#include "core/model/checkpoint_schema.h"
#include "nlohmann/json.hpp"
#ifdef MONOLOGUE_HAVE_SENTENCEPIECE
#include "core/text/text_tokenizer.h"
#endif
#ifdef MONOLOGUE_HAVE_ASR
#include "asr/asr_engine.h"
#endif
#ifdef MONOLOGUE_HAVE_TTS
#include "tts/tts_engine.h"
#endif
#ifdef MONOLOGUE_HAVE_DIALOGUE
#include "dialogue/dialogue_engine.h"
#endif

namespace monologue::cli {
namespace {

namespace fs = std::filesystem;
using nlohmann::ordered_json;

struct InfoOptions {
  std::string path;
  std::string mimi_config;
  bool json = false;
  bool config_only = false;
};

// "7 687 729 152"-style grouping for readability.
std::string Grouped(int64_t n) {
  std::string digits = std::to_string(n);
  std::string out;
  for (size_t i = 0; i < digits.size(); ++i) {
    if (i > 0 && (digits.size() - i) % 3 == 0) out += ' ';
    out += digits[i];
  }
  return out;
}

std::string DelaysString(const std::vector<int64_t>& delays) {
  // Run-length: [0, 0, 1x7, 0, 1x7].
  std::vector<std::string> parts;
  for (size_t i = 0; i < delays.size();) {
    size_t j = i;
    while (j < delays.size() && delays[j] == delays[i]) ++j;
    parts.push_back(j - i > 2
                        ? absl::StrCat(delays[i], "x", j - i)
                        : absl::StrJoin(std::vector<int64_t>(delays.begin() + i, delays.begin() + j), ", "));
    i = j;
  }
  return absl::StrCat("[", absl::StrJoin(parts, ", "), "]");
}

ordered_json LmJson(const LmConfig& c, const std::vector<TensorSpec>& specs) {
  ordered_json j;
  j["dim"] = c.dim;
  j["num_layers"] = c.num_layers;
  j["num_heads"] = c.num_heads;
  j["head_dim"] = c.head_dim();
  j["ffn_hidden"] = c.ffn_hidden();
  j["gating"] = c.gating;
  j["norm"] = c.norm;
  j["positional_embedding"] = c.positional_embedding;
  j["max_period"] = c.max_period;
  j["context"] = c.context;
  j["text_card"] = c.text_card;
  j["text_card_out"] = c.text_card_output();
  j["card"] = c.card;
  j["n_q"] = c.n_q;
  j["dep_q"] = c.dep_q;
  j["delays"] = c.delays;
  j["max_delay"] = c.max_delay();
  j["demux_second_stream"] = c.demux_second_stream;
  j["cross_attention"] = c.cross_attention;
  j["int8_checkpoint"] = c.int8_checkpoint;
  if (c.dep_q > 0) {
    j["depformer"] = {{"dim", c.depformer_dim},
                      {"num_layers", c.depformer_num_layers},
                      {"num_heads", c.depformer_num_heads},
                      {"ffn_hidden", c.depformer_ffn_hidden()},
                      {"weight_sets", c.depformer_weight_sets()},
                      {"schedule", c.depformer_weights_per_step_schedule},
                      {"low_rank_embeddings", c.depformer_low_rank_embeddings.has_value()
                                                  ? ordered_json(*c.depformer_low_rank_embeddings)
                                                  : ordered_json(nullptr)}};
  } else {
    j["depformer"] = nullptr;
  }
  ordered_json conds = ordered_json::object();
  for (const auto& [name, cond] : c.conditioners) {
    if (cond.type == ConditionerConfig::Type::kLut) {
      conds[name] = {
          {"type", "lut"}, {"n_bins", cond.n_bins}, {"dim", cond.dim}, {"values", cond.possible_values}};
    } else {
      conds[name] = {{"type", "tensor"}, {"dim", cond.dim}};
    }
  }
  j["conditioners"] = conds;
  if (c.fuser.has_value()) {
    j["fuser"] = {{"sum", c.fuser->sum},
                  {"cross", c.fuser->cross},
                  {"cross_attention_pos_emb", c.fuser->cross_attention_pos_emb},
                  {"cross_attention_pos_emb_scale", c.fuser->cross_attention_pos_emb_scale}};
  } else {
    j["fuser"] = nullptr;
  }
  j["extra_heads"] = {{"num_heads", c.extra_heads_num_heads}, {"dim", c.extra_heads_dim}};
  j["tensors"] = specs.size();
  j["parameters"] = CountParameters(specs);
  return j;
}

ordered_json MimiJson(const MimiConfig& m, const std::vector<TensorSpec>& specs) {
  ordered_json j;
  j["sample_rate"] = m.sample_rate;
  j["frame_rate"] = m.frame_rate;
  j["frame_size"] = m.frame_size();
  j["seanet"] = {{"dimension", m.seanet.dimension},
                 {"n_filters", m.seanet.n_filters},
                 {"ratios", m.seanet.ratios},
                 {"n_residual_layers", m.seanet.n_residual_layers}};
  j["transformer"] = {{"d_model", m.transformer.d_model},
                      {"num_layers", m.transformer.num_layers},
                      {"num_heads", m.transformer.num_heads},
                      {"dim_feedforward", m.transformer.dim_feedforward},
                      {"context", m.transformer.context}};
  j["quantizer"] = {
      {"n_q", m.quantizer.n_q}, {"bins", m.quantizer.bins}, {"dimension", m.quantizer.dimension}};
  j["tensors"] = specs.size();
  j["parameters"] = CountParameters(specs);
  return j;
}

// The settings the model's mode reads from config.json (stt_config, tts_config, lm_gen_config), checked by
// that mode's engine as its Load checks them; OK for modes this build does not have.
absl::Status CheckModeSettings(const std::string& dir, const ModelConfig& config) {
  switch (config.model_type) {
    case ModelType::kStt:
#ifdef MONOLOGUE_HAVE_ASR
      return AsrEngine::CheckConfig(dir);
#else
      break;
#endif
    case ModelType::kTts:
#ifdef MONOLOGUE_HAVE_TTS
      return TtsEngine::CheckConfig(dir);
#else
      break;
#endif
    case ModelType::kMoshi:
#ifdef MONOLOGUE_HAVE_DIALOGUE
      if (config.lm.dep_q > 0) return DialogueEngine::CheckConfig(dir);
#endif
      break;
    case ModelType::kHibiki:
      break;
  }
  return absl::OkStatus();
}

// Opens and validates one weight file; records problems; returns the file's JSON entry.
ordered_json CheckWeights(const fs::path& dir, const std::string& reference, const char* role,
                          const std::vector<TensorSpec>* specs, std::vector<std::string>& problems) {
  ordered_json f;
  f["role"] = role;
  f["name"] = reference;
  auto path = ResolveModelFile(dir, reference);
  if (!path.ok()) {
    f["status"] = "missing";
    problems.push_back(absl::StrCat(role, ": ", path.status().message()));
    return f;
  }
  f["path"] = path->string();
  std::error_code ec;
  f["bytes"] = static_cast<uint64_t>(fs::file_size(*path, ec));
  if (specs == nullptr) {
    f["status"] = "present";
    return f;
  }
  auto file = SafeTensorsFile::Open(path->string());
  if (!file.ok()) {
    f["status"] = "unreadable";
    problems.push_back(absl::StrCat(role, ": ", file.status().message()));
    return f;
  }
  std::set<std::string> dtypes;
  for (const SafeTensorInfo& t : (*file)->tensors()) dtypes.insert(t.dtype);
  f["tensors"] = (*file)->tensors().size();
  f["dtypes"] = std::vector<std::string>(dtypes.begin(), dtypes.end());
  // Any attention key layout the reference loader maps is checked under the released names.
  const CheckpointView view(*file);
  f["attention_keys"] = view.LayoutSummary();
  absl::Status status = ValidateCheckpoint(view, *specs);
  if (!status.ok()) {
    f["status"] = "mismatch";
    problems.push_back(absl::StrCat(role, ": ", status.message()));
  } else {
    f["status"] = "ok";
  }
  return f;
}

ordered_json CheckTokenizer(const fs::path& dir, const std::string& reference, int64_t text_card,
                            std::vector<std::string>& problems, std::vector<std::string>& notes) {
  ordered_json f;
  f["role"] = "text tokenizer";
  f["name"] = reference;
  auto path = ResolveModelFile(dir, reference);
  if (!path.ok()) {
    f["status"] = "missing";
    problems.push_back(absl::StrCat("text tokenizer: ", path.status().message()));
    return f;
  }
  f["path"] = path->string();
  std::error_code ec;
  f["bytes"] = static_cast<uint64_t>(fs::file_size(*path, ec));
#ifdef MONOLOGUE_HAVE_SENTENCEPIECE
  auto tokenizer = TextTokenizer::Load(path->string());
  if (!tokenizer.ok()) {
    f["status"] = "unreadable";
    problems.push_back(absl::StrCat("text tokenizer: ", tokenizer.status().message()));
    return f;
  }
  f["vocab_size"] = (*tokenizer)->vocab_size();
  f["status"] = "ok";
  if ((*tokenizer)->vocab_size() != text_card) {
    notes.push_back(absl::StrCat("tokenizer vocabulary (", (*tokenizer)->vocab_size(),
                                 ") differs from text_card (", text_card, ")"));
  }
#else
  f["status"] = "present (not parsed: built without sentencepiece)";
#endif
  return f;
}

void PrintSection(std::ostream& out, const char* name, const nlohmann::json& value) {
  if (value.is_object() && !value.empty()) out << name << ": " << value.dump() << "\n";
}

int RunInfo(const InfoOptions& options) {
  auto fail = [](const std::string& message) {
    std::cerr << "monologue info: " << message << "\n";
    return 1;
  };
  std::vector<std::string> problems, notes;
  ordered_json report;
  std::ostringstream text;
  const fs::path path(options.path);
  std::error_code ec;

  // A single Mimi file.
  if (fs::is_regular_file(path, ec)) {
    // Anything else is named as what it is not, before a Mimi report is printed for it.
    auto file = SafeTensorsFile::Open(path.string());
    if (!file.ok()) {
      return fail(absl::StrCat(path.string(), ": not a model directory or a Mimi checkpoint (",
                               file.status().message(), ")"));
    }
    bool mimi_like = false;
    for (const auto& t : (*file)->tensors()) {
      mimi_like = mimi_like || t.name.rfind("encoder.", 0) == 0 || t.name.rfind("decoder.", 0) == 0;
    }
    if (!mimi_like) {
      return fail(absl::StrCat(
          path.string(), ": a safetensors file but not a Mimi checkpoint (", (*file)->tensors().size(),
          " tensors",
          (*file)->tensors().empty() ? "" : absl::StrCat(", such as '", (*file)->tensors()[0].name, "'"),
          "): info takes a model directory (with its config.json) or a Mimi .safetensors file"));
    }
    MimiConfig mimi;
    if (!options.mimi_config.empty()) {
      auto json = ReadJsonFile(options.mimi_config);
      if (!json.ok()) return fail(std::string(json.status().message()));
      auto parsed = ParseMimiConfigJson(*json, options.mimi_config);
      if (!parsed.ok()) return fail(std::string(parsed.status().message()));
      mimi = *parsed;
    }
    const std::vector<TensorSpec> specs = ExpectedMimiTensors(mimi);
    report["path"] = path.string();
    report["model_type"] = "mimi";
    report["mimi"] = MimiJson(mimi, specs);
    report["files"] = ordered_json::array(
        {CheckWeights(path.parent_path(), path.filename().string(), "mimi weights", &specs, problems)});
  } else {
    auto loaded = LoadModelConfig(path);
    if (!loaded.ok()) return fail(std::string(loaded.status().message()));
    const ModelConfig& config = *loaded;
    const std::vector<TensorSpec> lm_specs = ExpectedLmTensors(config.lm);
    const std::vector<TensorSpec> mimi_specs = ExpectedMimiTensors(config.mimi);
    report["path"] = path.string();
    report["model_type"] = ModelTypeName(config.model_type);
    report["legacy"] = config.legacy;
    report["lm"] = LmJson(config.lm, lm_specs);
    report["mimi"] = MimiJson(config.mimi, mimi_specs);
    report["mimi"]["codebooks_used"] = config.mimi_codebooks();
    report["lm_gen_config"] = config.lm_gen_config;
    report["stt_config"] = config.stt_config;
    report["tts_config"] = config.tts_config;
    report["model_id"] = config.model_id;
    if (absl::Status st = CheckModeSettings(path.string(), config); !st.ok()) {
      problems.push_back(std::string(st.message()));
    }
    ordered_json files = ordered_json::array();
    if (!config.legacy) {
      files.push_back({{"role", "config"},
                       {"name", "config.json"},
                       {"bytes", static_cast<uint64_t>(fs::file_size(path / "config.json", ec))},
                       {"status", "ok"}});
    }
    if (config.mimi_config_name.has_value()) {
      files.push_back(CheckWeights(path, *config.mimi_config_name, "mimi config", nullptr, problems));
      files.back()["status"] = "ok";  // LoadModelConfig parsed and validated it
    }
    if (!options.config_only) {
      files.push_back(CheckWeights(path, config.moshi_name, "lm weights", &lm_specs, problems));
      files.push_back(CheckWeights(path, config.mimi_name, "mimi weights", &mimi_specs, problems));
      files.push_back(CheckTokenizer(path, config.tokenizer_name, config.lm.text_card, problems, notes));
      if (config.lora_name.has_value()) {
        files.push_back(CheckWeights(path, *config.lora_name, "lora weights", nullptr, problems));
      }
      for (const auto& f : files) {
        if (f.contains("dtypes") && f["role"] == "lm weights") report["lm"]["dtypes"] = f["dtypes"];
      }
    } else {
      notes.push_back("--config-only: weight and tokenizer files not checked");
    }
    report["files"] = files;
  }
  report["notes"] = notes;
  report["problems"] = problems;

  if (options.json) {
    std::cout << report.dump(2) << "\n";
  } else {
    const ordered_json& r = report;
    text << "model: " << r["path"].get<std::string>() << "\n";
    text << "type: " << r["model_type"].get<std::string>();
    if (r.contains("legacy")) {
      text << (r["legacy"].get<bool>() ? " (legacy layout: no config.json, built-in Moshi 7B configuration)"
                                       : " (config.json)");
    }
    text << "\n";
    if (r.contains("lm")) {
      const ordered_json& lm = r["lm"];
      text << "LM: dim " << lm["dim"] << ", " << lm["num_layers"] << " layers, " << lm["num_heads"]
           << " heads (head dim " << lm["head_dim"] << "), FFN hidden " << lm["ffn_hidden"] << " ("
           << lm["gating"].get<std::string>() << "), norm " << lm["norm"].get<std::string>() << "\n";
      text << "  context " << lm["context"] << " steps, positional embedding "
           << lm["positional_embedding"].get<std::string>() << " (max_period " << lm["max_period"] << ")\n";
      text << "  streams: text + " << lm["n_q"] << " audio (n_q " << lm["n_q"] << ", dep_q " << lm["dep_q"]
           << "), text_card " << lm["text_card"] << ", card " << lm["card"]
           << (lm["demux_second_stream"].get<bool>() ? ", demuxed second text stream" : "") << "\n";
      text << "  delays: " << DelaysString(lm["delays"].get<std::vector<int64_t>>()) << " (max "
           << lm["max_delay"] << ")\n";
      if (lm["depformer"].is_null()) {
        text << "  depformer: none\n";
      } else {
        const ordered_json& d = lm["depformer"];
        text << "  depformer: dim " << d["dim"] << ", " << d["num_layers"] << " layers, " << d["num_heads"]
             << " heads, FFN hidden " << d["ffn_hidden"] << ", " << d["weight_sets"] << " weight sets";
        if (!d["low_rank_embeddings"].is_null()) text << ", low-rank embeddings " << d["low_rank_embeddings"];
        text << "\n";
      }
      if (!lm["conditioners"].empty()) {
        std::vector<std::string> parts;
        for (auto it = lm["conditioners"].begin(); it != lm["conditioners"].end(); ++it) {
          const ordered_json& c = it.value();
          parts.push_back(c["type"] == "lut"
                              ? absl::StrCat(it.key(), " (lut, ", c["n_bins"].get<int64_t>(), " values, dim ",
                                             c["dim"].get<int64_t>(), ")")
                              : absl::StrCat(it.key(), " (tensor, dim ", c["dim"].get<int64_t>(), ")"));
        }
        text << "  conditioners: " << absl::StrJoin(parts, ", ") << "\n";
      }
      if (!lm["fuser"].is_null()) text << "  fuser: " << lm["fuser"].dump() << "\n";
      if (lm["cross_attention"].get<bool>()) text << "  cross-attention: yes\n";
      if (lm["int8_checkpoint"].get<bool>()) {
        text << "  Linear weights stored in int8 with per-row scales (quantize: true); runs as int8 on the "
                "CPU "
                "by default\n";
      }
      if (lm["extra_heads"]["num_heads"].get<int64_t>() > 0) {
        text << "  extra heads: " << lm["extra_heads"]["num_heads"] << " x " << lm["extra_heads"]["dim"]
             << "\n";
      }
      text << "  parameters: " << Grouped(lm["parameters"].get<int64_t>()) << " in " << lm["tensors"]
           << " tensors";
      if (lm.contains("dtypes"))
        text << ", dtypes " << absl::StrJoin(lm["dtypes"].get<std::vector<std::string>>(), "/");
      text << "\n";
    }
    const ordered_json& m = r["mimi"];
    text << "Mimi: " << m["sample_rate"] << " Hz, " << m["frame_rate"] << " Hz frames (" << m["frame_size"]
         << " samples), SEANet " << m["seanet"]["n_filters"] << " filters, ratios "
         << m["seanet"]["ratios"].dump() << ", latent " << m["seanet"]["dimension"] << "; transformer "
         << m["transformer"]["num_layers"] << " x d" << m["transformer"]["d_model"] << "; "
         << m["quantizer"]["n_q"] << " codebooks x " << m["quantizer"]["bins"];
    if (m.contains("codebooks_used")) text << "; codebooks used " << m["codebooks_used"];
    text << "\n  parameters: " << Grouped(m["parameters"].get<int64_t>()) << " in " << m["tensors"]
         << " tensors\n";
    if (r.contains("lm_gen_config")) {
      PrintSection(text, "lm_gen_config", r["lm_gen_config"]);
      PrintSection(text, "stt_config", r["stt_config"]);
      PrintSection(text, "tts_config", r["tts_config"]);
      PrintSection(text, "model_id", r["model_id"]);
    }
    text << "files:\n";
    for (const auto& f : r["files"]) {
      text << "  " << f["role"].get<std::string>() << ": " << f["name"].get<std::string>();
      if (f.contains("bytes")) text << ", " << Grouped(f["bytes"].get<int64_t>()) << " bytes";
      if (f.contains("tensors")) text << ", " << f["tensors"] << " tensors";
      if (f.contains("dtypes"))
        text << " (" << absl::StrJoin(f["dtypes"].get<std::vector<std::string>>(), "/") << ")";
      if (f.contains("vocab_size")) text << ", vocabulary " << f["vocab_size"];
      text << " [" << f["status"].get<std::string>() << "]\n";
      if (f.contains("attention_keys")) text << "    attention keys: " << f["attention_keys"].get<std::string>() << "\n";
    }
    for (const auto& n : r["notes"]) text << "note: " << n.get<std::string>() << "\n";
    std::cout << text.str();
  }
  if (!problems.empty()) {
    std::cerr << "monologue info: " << problems.size() << " problem" << (problems.size() > 1 ? "s" : "")
              << " with " << options.path << ":\n";
    for (const std::string& p : problems) std::cerr << "- " << p << "\n";
    return 1;
  }
  return 0;
}

}  // namespace

void RegisterInfoCommand(CLI::App& app, int& exit_code) {
  auto options = std::make_shared<InfoOptions>();
  CLI::App* cmd = app.add_subcommand(
      "info",
      "Describe a model directory (or a Mimi .safetensors file) and check its files against the config");
  cmd->add_option("path", options->path, "model directory, or a Mimi .safetensors file")->required();
  cmd->add_flag("--json", options->json, "print the report as JSON");
  cmd->add_flag("--config-only", options->config_only, "read the configs only; do not open weight files");
  cmd->add_option("--mimi-config", options->mimi_config,
                  "Mimi config JSON for a single non-released Mimi file");
  cmd->callback([options, &exit_code] { exit_code = RunInfo(*options); });
}

}  // namespace monologue::cli
