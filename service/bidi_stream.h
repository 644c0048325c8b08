// The reactor mechanics every streaming RPC of the server shares (callback API): one read in flight at a
// time, paused while the mode says its input is full (HTTP/2 flow control then slows the client); one write
// in flight, the rest queued and bounded (a client that stops reading ends with RESOURCE_EXHAUSTED); the idle
// timeout; Finish exactly once, after the write in flight; the batch slot freed at once on any end. A mode's
// stream derives from it and supplies what a request means, what half-close means, and how its session's
// events become responses.
//
// Locking: a reaction takes only the stream's mu_; the scheduler calls Pump/Abort under the loop's
// streams_mu_ and then takes mu_. StartRead/StartWrite/Finish never run a reaction inline on the server side.
#pragma once

#include <grpcpp/grpcpp.h>

#include <deque>
#include <mutex>
#include <string>

#include "absl/strings/str_cat.h"
#include "service/mode_loop.h"

namespace monologue {

template <typename Request, typename Response>
class BidiStream : public grpc::ServerBidiReactor<Request, Response>, public LiveStream {
 public:
  BidiStream(ModeLoop* loop, grpc::CallbackServerContext* context) : loop_(loop), context_(context) {
    loop_->Register(this);
  }

  void OnReadDone(bool ok) override {
    // The mode's heavy work on a request (decoding its audio) runs first, outside mu_: the scheduler takes
    // mu_ after every model step, so a slow decode under it would delay every stream's next step.
    PrepareRead(ok, request_);
    {
      std::lock_guard<std::mutex> lock(mu_);
      read_in_flight_ = false;
      if (finished_) return;
      if (!ok && context_ != nullptr && context_->IsCancelled()) {
        // A cancelled call also ends the reads: that is not the client's end of input.
        FinishLocked(grpc::Status(grpc::StatusCode::CANCELLED, "cancelled by the client"));
      } else if (!ok) {
        half_closed_ = true;
        HalfClosedLocked();
      } else {
        last_request_ = ServiceClock::now();
        HandleRequestLocked(request_);
        if (!finished_ && !half_closed_) {
          if (InputFullLocked()) {
            read_paused_ = true;
          } else {
            read_in_flight_ = true;
            this->StartRead(&request_);
          }
        }
      }
    }
    loop_->Notify();
  }

  void OnWriteDone(bool ok) override {
    {
      std::lock_guard<std::mutex> lock(mu_);
      write_in_flight_ = false;
      if (finish_pending_) {
        finish_pending_ = false;
        this->Finish(pending_status_);
        return;
      }
      if (!ok) {
        FinishLocked(grpc::Status(grpc::StatusCode::CANCELLED, "the client stopped reading"));
        return;
      }
      WriteNextLocked();
      ResumeReadLocked();
    }
    loop_->Notify();
  }

  void OnCancel() override {
    std::lock_guard<std::mutex> lock(mu_);
    FinishLocked(grpc::Status(grpc::StatusCode::CANCELLED, "cancelled by the client"));
  }

  void OnDone() override {
    loop_->Unregister(this);
    delete this;
  }

  void Pump(ServiceClock::time_point now) override {
    std::lock_guard<std::mutex> lock(mu_);
    if (finished_) return;
    PumpLocked(now);
    if (finished_) return;
    if (out_.size() > static_cast<size_t>(loop_->options().max_pending_responses)) {
      FinishLocked(grpc::Status(grpc::StatusCode::RESOURCE_EXHAUSTED,
                                absl::StrCat("the client reads its responses too slowly: more than ",
                                             loop_->options().max_pending_responses, " are waiting")));
      return;
    }
    WriteNextLocked();
    ResumeReadLocked();
    if (!finished_ && read_in_flight_ && !half_closed_ &&
        std::chrono::duration<double>(now - last_request_).count() > loop_->options().idle_timeout_seconds) {
      FinishLocked(grpc::Status(grpc::StatusCode::OUT_OF_RANGE,
                                absl::StrCat("no request for ", loop_->options().idle_timeout_seconds,
                                             " s: keep sending, or half-close the stream to end it")));
    }
  }

  bool Abort(const grpc::Status& status) override {
    std::lock_guard<std::mutex> lock(mu_);
    if (finished_) return false;
    FinishLocked(status);
    return true;
  }

 protected:
  // Before a read's reaction takes mu_ (read callback thread; reads never overlap): `ok` false means the
  // reads ended (half-close or cancel). Default: nothing.
  virtual void PrepareRead(bool ok, const Request& request) {}

  // Called at the end of the derived constructor (never from the base one: a reaction could otherwise run
  // before the derived object exists).
  void Begin() {
    std::lock_guard<std::mutex> lock(mu_);
    last_request_ = ServiceClock::now();
    if (loop_->draining) {
      loop_->metrics().Refused("shutting_down");
      FinishLocked(
          grpc::Status(grpc::StatusCode::UNAVAILABLE,
                       "the server is shutting down and accepts no new streams; use another replica"));
      return;
    }
    read_in_flight_ = true;
    this->StartRead(&request_);
  }

  // A request arrived (not the half-close).
  virtual void HandleRequestLocked(const Request& request) = 0;
  // The client half-closed (half_closed_ is already true).
  virtual void HalfClosedLocked() = 0;
  // After a model step: queue the session's events (Queue), set ended_ after the last one.
  virtual void PumpLocked(ServiceClock::time_point now) = 0;
  // True while the server should stop reading (the session has enough input ahead).
  virtual bool InputFullLocked() const { return OutputBacklogLocked(); }
  // Frees the session (its batch slot) and anything else the stream holds.
  virtual void ReleaseLocked() = 0;

  bool OutputBacklogLocked() const {
    return out_.size() > static_cast<size_t>(loop_->options().max_pending_responses / 2);
  }

  void Queue(Response r) { out_.push_back(std::move(r)); }

  void WriteNextLocked() {
    if (finished_ || write_in_flight_) return;
    if (!out_.empty()) {
      writing_ = std::move(out_.front());
      out_.pop_front();
      write_in_flight_ = true;
      this->StartWrite(&writing_);
      return;
    }
    if (ended_) FinishLocked(grpc::Status::OK);
  }

  void ResumeReadLocked() {
    if (finished_ || !read_paused_ || InputFullLocked()) return;
    read_paused_ = false;
    read_in_flight_ = true;
    last_request_ = ServiceClock::now();
    this->StartRead(&request_);
  }

  // Opened a session: count it.
  void CountOpenLocked() {
    counted_open_ = true;
    loop_->metrics().streams_open++;
    loop_->metrics().streams_started++;
  }

  void FinishLocked(grpc::Status status) {
    if (finished_) return;
    finished_ = true;
    // The message travels in a trailer: one that echoes a huge client value (a 5000-character voice name,
    // twice) would pass gRPC's 8 KB metadata limit, and the client would get only that limit's error.
    constexpr size_t kMaxMessage = 1024;
    if (const std::string& m = status.error_message(); m.size() > kMaxMessage) {
      size_t cut = kMaxMessage;
      while (cut > 0 && (static_cast<unsigned char>(m[cut]) & 0xC0) == 0x80) --cut;  // whole UTF-8 characters
      status = grpc::Status(status.error_code(),
                            absl::StrCat(m.substr(0, cut), "... (", m.size(), " bytes in all)"));
    }
    out_.clear();
    ReleaseLocked();
    if (counted_open_) {
      loop_->metrics().streams_open--;
      counted_open_ = false;
    }
    loop_->metrics().Finished(GrpcCodeName(status.error_code()));
    if (write_in_flight_) {
      finish_pending_ = true;
      pending_status_ = std::move(status);
    } else {
      this->Finish(std::move(status));
    }
  }

  void RefuseLocked(const char* reason, grpc::Status status) {
    loop_->metrics().Refused(reason);
    FinishLocked(std::move(status));
  }

  ModeLoop* loop_;
  grpc::CallbackServerContext* context_;
  std::mutex mu_;
  std::deque<Response> out_;
  bool configured_ = false;
  bool half_closed_ = false;
  bool ended_ = false;  // the last response is queued: Finish(OK) once written
  bool finished_ = false;
  bool read_paused_ = false;

 private:
  Request request_;
  Response writing_;
  bool read_in_flight_ = false;
  bool write_in_flight_ = false;
  bool finish_pending_ = false;
  bool counted_open_ = false;
  grpc::Status pending_status_;
  ServiceClock::time_point last_request_;
};

}  // namespace monologue
