#include "tts/tts_state_machine.h"

namespace monologue::tts {

StateMachine::StateMachine(StateMachineOptions options)
    : options_(options),
      remaining_padding_(options.initial_padding),
      forced_padding_(options.initial_padding) {}

void StateMachine::Append(std::vector<Entry> entries) {
  for (Entry& e : entries) entries_.push_back(std::move(e));
}

bool StateMachine::CanStep() const {
  if (closed_) return true;
  // A pop reads the front entry and, when it has tokens, the lookahead-th next entry with tokens.
  int with_tokens = 0;
  for (const Entry& e : entries_) with_tokens += e.tokens.empty() ? 0 : 1;
  return with_tokens >= options_.second_stream_ahead + 1;
}

std::vector<int> StateMachine::TokensAhead(int lookahead) const {
  for (const Entry& e : entries_) {
    if (e.tokens.empty()) continue;
    if (--lookahead == 0) return e.tokens;
  }
  return {};
}

StateMachine::Output StateMachine::Process(int64_t step, int64_t sampled) {
  const TokenIds& ids = options_.ids;
  Output out;
  int64_t token = (sampled == ids.new_word || sampled == ids.pad) ? sampled : ids.pad;
  if (!queued_.empty() || forced_padding_ > 0) {
    token = ids.pad;  // the current word is still being fed, or padding is forced
  } else if (remaining_padding_ <= 0) {
    token = ids.new_word;  // no more padding allowed
  }

  if (token == ids.new_word) {
    if (!entries_.empty()) {
      Entry entry = std::move(entries_.front());
      entries_.pop_front();
      out.consumed = true;
      if (!entry.tokens.empty()) {
        transcript_.push_back({entry.text, step});
        out.word = transcript_.back();
        queued_.insert(queued_.end(), entry.tokens.begin(), entry.tokens.end());
        if (options_.second_stream_ahead > 0) {
          std::vector<int> ahead = TokensAhead(options_.second_stream_ahead);
          lookahead_queued_.insert(lookahead_queued_.end(), ahead.begin(), ahead.end());
        }
        remaining_padding_ = options_.max_padding;
      } else {
        token = ids.pad;  // a pause: counts as padding
      }
      forced_padding_ = entry.padding;
    } else {
      // Past the last word: the end. With a lookahead stream the first request stays a new word.
      token = ids.pad;
      if (options_.second_stream_ahead > 0 && !end_step_.has_value()) token = ids.new_word;
      if (!end_step_.has_value()) end_step_ = step;
    }
  }

  int64_t fed;
  if (token == ids.pad) {
    if (remaining_padding_ > 0) --remaining_padding_;
    if (forced_padding_ > 0) --forced_padding_;
    if (!queued_.empty()) {
      fed = queued_.front();
      queued_.pop_front();
    } else {
      fed = ids.pad;
    }
  } else {
    fed = ids.new_word;
  }

  if (options_.second_stream_ahead > 0) {
    int64_t second = -1;
    if (fed == ids.new_word) {
      // The new-word marker moves to the second stream; the main stream goes on with the word's ids.
      second = ids.new_word;
      if (!queued_.empty()) {
        fed = queued_.front();
        queued_.pop_front();
      } else {
        fed = ids.pad;
      }
    } else if (!lookahead_queued_.empty()) {
      second = lookahead_queued_.front();
      lookahead_queued_.pop_front();
    }
    fed = (second + 1) * ids.card + fed;  // demultiplexed by the LM's text embedding
  }
  out.fed = fed;
  return out;
}

}  // namespace monologue::tts
