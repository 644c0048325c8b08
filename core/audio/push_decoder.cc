// AudioDecoder::OpenPush: bytes the caller pushes, decoded on a background thread (audio_decoder.h).
#include <algorithm>
#include <condition_variable>
#include <cstring>
#include <mutex>
#include <thread>
#include <utility>

#include "absl/strings/str_cat.h"
#include "core/audio/audio_decoder.h"
#include "core/audio/decode_pipeline.h"
#include "core/audio/ffmpeg_util.h"

namespace monologue {

using audio_internal::DecodeEngine;
using audio_internal::SampleQueue;

namespace {

constexpr int kPushIoBufferSize = 4096;

// Push source: a background thread runs the pipeline, reading through a custom AVIOContext whose read
// callback blocks until the caller pushes bytes (or finishes). Read() never waits for input: it waits only
// until the thread has decoded everything pushed so far ("starved"), or has enough samples.
class PushDecoder final : public AudioDecoder {
 public:
  PushDecoder(std::string name, const AudioDecoderOptions& options)
      : name_(name), options_(options), engine_(std::make_unique<DecodeEngine>(std::move(name), options)) {
    if (options_.max_buffered_samples == 0) options_.max_buffered_samples = 1;
    auto* buffer = static_cast<uint8_t*>(av_malloc(kPushIoBufferSize));
    // write_flag = 0, no seek callback: FFmpeg treats the input as a non-seekable stream.
    avio_ =
        avio_alloc_context(buffer, kPushIoBufferSize, 0, this, &PushDecoder::ReadCallback, nullptr, nullptr);
    thread_ = std::thread([this] { Run(); });
  }

  ~PushDecoder() override {
    {
      std::lock_guard<std::mutex> lock(mu_);
      cancel_ = true;
    }
    cv_.notify_all();
    thread_.join();
    engine_.reset();  // closes the demuxer before its AVIOContext goes away
    if (avio_ != nullptr) {
      av_freep(&avio_->buffer);
      avio_context_free(&avio_);
    }
  }

  absl::Status Push(std::span<const uint8_t> bytes) override {
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (input_finished_) {
        return absl::FailedPreconditionError(absl::StrCat(name_, ": Push() after Finish()"));
      }
      input_.insert(input_.end(), bytes.begin(), bytes.end());
      bytes_pushed_ += bytes.size();
    }
    cv_.notify_all();
    return absl::OkStatus();
  }

  absl::Status Finish() override {
    {
      std::lock_guard<std::mutex> lock(mu_);
      input_finished_ = true;
    }
    cv_.notify_all();
    return absl::OkStatus();
  }

  absl::StatusOr<std::vector<float>> Read(size_t max_samples) override {
    if (max_samples == 0) return absl::InvalidArgumentError(absl::StrCat(name_, ": Read(0)"));
    std::unique_lock<std::mutex> lock(mu_);
    const size_t enough = std::min(max_samples, options_.max_buffered_samples);
    cv_.wait(lock, [&] { return output_.size() >= enough || thread_done_ || Starved(); });
    if (output_.size() == 0 && thread_done_ && !final_status_.ok()) return final_status_;
    std::vector<float> result = output_.Take(max_samples);
    samples_read_ += static_cast<int64_t>(result.size());
    lock.unlock();
    cv_.notify_all();  // the decoder thread may wait for room in the output queue
    return result;
  }

  bool at_end() const override {
    std::lock_guard<std::mutex> lock(mu_);
    return thread_done_ && output_.size() == 0;
  }
  bool has_info() const override {
    std::lock_guard<std::mutex> lock(mu_);
    return has_info_;
  }
  AudioStreamInfo info() const override {
    std::lock_guard<std::mutex> lock(mu_);
    return info_;
  }
  int64_t samples_read() const override {
    std::lock_guard<std::mutex> lock(mu_);
    return samples_read_;
  }
  const std::string& name() const override { return name_; }

 private:
  // The decoder thread waits in the read callback with nothing left to read: all pushed bytes are used.
  bool Starved() const { return waiting_for_input_ && input_offset_ == input_.size() && !input_finished_; }

  static int ReadCallback(void* opaque, uint8_t* buf, int size) {
    auto* self = static_cast<PushDecoder*>(opaque);
    std::unique_lock<std::mutex> lock(self->mu_);
    while (self->input_offset_ == self->input_.size() && !self->input_finished_ && !self->cancel_) {
      self->waiting_for_input_ = true;
      self->cv_.notify_all();
      self->cv_.wait(lock);
    }
    self->waiting_for_input_ = false;
    if (self->cancel_) return AVERROR_EXIT;
    const size_t available = self->input_.size() - self->input_offset_;
    if (available == 0) return AVERROR_EOF;
    const size_t n = std::min(available, static_cast<size_t>(size));
    std::memcpy(buf, self->input_.data() + self->input_offset_, n);
    self->input_offset_ += n;
    if (self->input_offset_ == self->input_.size()) {
      self->input_.clear();
      self->input_offset_ = 0;
    }
    return static_cast<int>(n);
  }

  void Run() {
    absl::Status status = avio_ == nullptr ? absl::ResourceExhaustedError("avio_alloc_context failed")
                                           : engine_->Open("", avio_, /*streaming=*/true);
    if (!status.ok()) {
      std::lock_guard<std::mutex> lock(mu_);
      if (bytes_pushed_ == 0 && input_finished_) {
        status = absl::InvalidArgumentError(absl::StrCat(name_, ": empty input (no bytes were pushed)"));
      }
      final_status_ = cancel_ ? absl::CancelledError(absl::StrCat(name_, ": decoder closed")) : status;
      thread_done_ = true;
      cv_.notify_all();
      return;
    }
    {
      std::lock_guard<std::mutex> lock(mu_);
      info_ = engine_->info();
      has_info_ = true;
    }
    std::vector<float> chunk;
    while (true) {
      {
        std::unique_lock<std::mutex> lock(mu_);
        cv_.wait(lock, [&] { return output_.size() < options_.max_buffered_samples || cancel_; });
        if (cancel_) break;
      }
      chunk.clear();
      engine_->Step(&chunk);
      std::lock_guard<std::mutex> lock(mu_);
      output_.Append(chunk);
      if (engine_->finished() || cancel_) {
        final_status_ = engine_->stream_error();
        break;
      }
      cv_.notify_all();
    }
    std::lock_guard<std::mutex> lock(mu_);
    thread_done_ = true;
    cv_.notify_all();
  }

  std::string name_;
  AudioDecoderOptions options_;
  std::unique_ptr<DecodeEngine> engine_;
  AVIOContext* avio_ = nullptr;
  std::thread thread_;

  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::vector<uint8_t> input_;  // guarded by mu_, as is everything below
  size_t input_offset_ = 0;
  size_t bytes_pushed_ = 0;
  bool input_finished_ = false;
  bool cancel_ = false;
  bool waiting_for_input_ = false;
  bool thread_done_ = false;
  bool has_info_ = false;
  AudioStreamInfo info_;
  SampleQueue output_;
  absl::Status final_status_;
  int64_t samples_read_ = 0;
};

}  // namespace

std::unique_ptr<AudioDecoder> AudioDecoder::OpenPush(const AudioDecoderOptions& options,
                                                     std::string_view name) {
  return std::make_unique<PushDecoder>(std::string(name), options);
}

}  // namespace monologue
