#include "tokenizer.h"

#include <algorithm>
#include <optional>
#include <queue>
#include <regex>

namespace bitnetc::rt {

// ---- Unicode ------------------------------------------------------------------------

namespace {

enum : uint8_t { kLetter = 1, kNumber = 2, kPunct = 4, kSymbol = 8, kMark = 16, kAssigned = 32 };

struct CategoryRange {
  uint32_t first;
  uint8_t flags;
};
constexpr CategoryRange kCategories[] = {
#include "unicode_tables.inc"
};

uint8_t cpt_flags(uint32_t cp) {
  const auto* end = std::end(kCategories);
  const auto* it = std::upper_bound(std::begin(kCategories), end, cp,
                                    [](uint32_t v, const CategoryRange& r) { return v < r.first; });
  return it == std::begin(kCategories) ? 0 : (it - 1)->flags;
}

// Unicode's White_Space property (what \s matches in the tokenizers' regex engines).
bool is_space(uint32_t cp) {
  return (cp >= 0x09 && cp <= 0x0D) || cp == 0x20 || cp == 0x85 || cp == 0xA0 || cp == 0x1680 ||
         (cp >= 0x2000 && cp <= 0x200A) || cp == 0x2028 || cp == 0x2029 || cp == 0x202F || cp == 0x205F || cp == 0x3000;
}

size_t utf8_len(uint8_t lead) {
  if (lead < 0x80) return 1;
  if ((lead & 0xE0) == 0xC0) return 2;
  if ((lead & 0xF0) == 0xE0) return 3;
  if ((lead & 0xF8) == 0xF0) return 4;
  return 0;
}

// Decodes valid UTF-8 (checked beforehand) into code points and their byte offsets.
void decode_utf8(std::string_view s, std::vector<uint32_t>& cps, std::vector<size_t>& offs) {
  for (size_t i = 0; i < s.size();) {
    const auto c = static_cast<uint8_t>(s[i]);
    const size_t n = utf8_len(c);
    uint32_t cp = n == 1 ? c : c & (0x7F >> n);
    for (size_t k = 1; k < n; ++k) cp = (cp << 6) | (static_cast<uint8_t>(s[i + k]) & 0x3F);
    cps.push_back(cp);
    offs.push_back(i);
    i += n;
  }
  offs.push_back(s.size());
}

std::string encode_utf8(uint32_t cp) {
  std::string out;
  if (cp < 0x80) {
    out += static_cast<char>(cp);
  } else if (cp < 0x800) {
    out += static_cast<char>(0xC0 | (cp >> 6));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else if (cp < 0x10000) {
    out += static_cast<char>(0xE0 | (cp >> 12));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else {
    out += static_cast<char>(0xF0 | (cp >> 18));
    out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  }
  return out;
}

// GPT-2's byte-to-unicode map: printable bytes stand for themselves, the rest are moved
// to U+0100 and up, so that every byte is a visible character in the vocabulary.
struct ByteMap {
  std::string to_unicode[256];
  std::unordered_map<uint32_t, uint8_t> to_byte;
  ByteMap() {
    int n = 0;
    for (int b = 0; b < 256; ++b) {
      const bool printable = (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE);
      const uint32_t cp = printable ? static_cast<uint32_t>(b) : 256u + n++;
      to_unicode[b] = encode_utf8(cp);
      to_byte[cp] = static_cast<uint8_t>(b);
    }
  }
};
const ByteMap& byte_map() {
  static const ByteMap m;
  return m;
}

const std::string kSpaceMark = "\xE2\x96\x81";  // U+2581, SentencePiece's space

}  // namespace

bool utf8_valid(std::string_view s, size_t* bad) {
  for (size_t i = 0; i < s.size();) {
    const auto c = static_cast<uint8_t>(s[i]);
    const size_t n = utf8_len(c);
    bool ok = n != 0 && i + n <= s.size();
    uint32_t cp = n == 1 ? c : c & (0x7F >> n);
    for (size_t k = 1; ok && k < n; ++k) {
      const auto cc = static_cast<uint8_t>(s[i + k]);
      ok = (cc & 0xC0) == 0x80;
      cp = (cp << 6) | (cc & 0x3F);
    }
    if (ok)
      ok = !((n == 2 && cp < 0x80) || (n == 3 && cp < 0x800) || (n == 4 && cp < 0x10000) || cp > 0x10FFFF ||
             (cp >= 0xD800 && cp <= 0xDFFF));
    if (!ok) {
      if (bad) *bad = i;
      return false;
    }
    i += n;
  }
  return true;
}

// ---- Tokenizer ----------------------------------------------------------------------

Tokenizer::Tokenizer(Vocab v) : v_(std::move(v)) {
  if (v_.types.size() != v_.tokens.size()) v_.types.assign(v_.tokens.size(), TokenType::Normal);
  if (v_.scores.size() != v_.tokens.size()) v_.scores.assign(v_.tokens.size(), 0.0f);
  ids_.reserve(v_.tokens.size());
  for (size_t i = 0; i < v_.tokens.size(); ++i) ids_.emplace(v_.tokens[i], static_cast<int32_t>(i));
  for (size_t r = 0; r < v_.merges.size(); ++r) merge_rank_.emplace(v_.merges[r], static_cast<int32_t>(r));
  byte_tokens_.assign(256, -1);
  if (v_.kind == VocabKind::Spm) {
    static const char* hex = "0123456789ABCDEF";
    for (int b = 0; b < 256; ++b) {
      const std::string name = std::string("<0x") + hex[b >> 4] + hex[b & 15] + ">";
      byte_tokens_[b] = find(name);
    }
  }
  for (size_t i = 0; i < v_.tokens.size(); ++i)
    if ((v_.types[i] == TokenType::Control || v_.types[i] == TokenType::UserDefined) && !v_.tokens[i].empty())
      specials_.push_back(static_cast<int32_t>(i));
  std::stable_sort(specials_.begin(), specials_.end(),
                   [&](int32_t a, int32_t b) { return v_.tokens[a].size() > v_.tokens[b].size(); });
}

int32_t Tokenizer::find(std::string_view token) const {
  auto it = ids_.find(std::string(token));
  return it == ids_.end() ? -1 : it->second;
}

std::vector<int32_t> Tokenizer::encode(std::string_view text, bool add_bos, bool parse_special) const {
  return encode(text, add_bos, parse_special, {});
}

std::vector<int32_t> Tokenizer::encode(std::string_view text, bool add_bos, bool parse_special,
                                       std::span<const std::pair<size_t, size_t>> plain) const {
  size_t bad = 0;
  if (!utf8_valid(text, &bad)) throw TokenizerError("text is not valid UTF-8 (at byte " + std::to_string(bad) + ")");
  std::vector<int32_t> out;
  if (add_bos && v_.bos >= 0) out.push_back(v_.bos);

  // Split out special tokens first: user-defined always, control ones when asked.
  struct Fragment {
    std::string_view text;
    int32_t token = -1;
  };
  std::vector<Fragment> frags = {{text}};
  for (int32_t id : specials_) {
    if (v_.types[id] == TokenType::Control && !parse_special) continue;
    const std::string& s = v_.tokens[id];
    const bool control = v_.types[id] == TokenType::Control;
    auto in_plain = [&](const Fragment& f, size_t at) {  // a match inside protected text
      const size_t begin = static_cast<size_t>(f.text.data() - text.data()) + at, end = begin + s.size();
      return control && std::any_of(plain.begin(), plain.end(), [&](const std::pair<size_t, size_t>& p) {
               return begin < p.second && p.first < end;
             });
    };
    std::vector<Fragment> next;
    for (const Fragment& f : frags) {
      if (f.token >= 0) {
        next.push_back(f);
        continue;
      }
      size_t start = 0;
      for (size_t at = f.text.find(s); at != std::string_view::npos; at = f.text.find(s, at + 1)) {
        if (in_plain(f, at)) continue;
        if (at > start) next.push_back({f.text.substr(start, at - start)});
        next.push_back({{}, id});
        start = at + s.size();
        at = start - 1;
      }
      if (start < f.text.size()) next.push_back({f.text.substr(start)});
    }
    frags.swap(next);
  }

  bool after_special_or_start = true;
  for (const Fragment& f : frags) {
    if (f.token >= 0) {
      out.push_back(f.token);
      after_special_or_start = true;
      continue;
    }
    if (f.text.empty()) continue;  // no text, no dummy-prefix space
    if (v_.kind == VocabKind::Spm)
      encode_spm(f.text, v_.add_space_prefix && after_special_or_start, out);
    else
      encode_bpe(f.text, out);
    after_special_or_start = false;
  }
  return out;
}

namespace {

// The merge loop both tokenizers share (llama.cpp's llm_tokenizer_spm/bpe sessions):
// start from the UTF-8 characters of `text` and repeatedly merge the adjacent pair with
// the smallest priority key (leftmost on ties) until no pair has one. `priority(a, b)`
// returns that key for the pair of pieces a, b, or nullopt when they cannot merge.
// Returns the final pieces in order.
template <typename Priority>
std::vector<std::string_view> merge_pairs(std::string_view text, const Priority& priority) {
  struct Symbol {
    int prev, next;
    size_t start, n;
  };
  std::vector<Symbol> sym;
  for (size_t off = 0; off < text.size();) {
    const size_t n = std::min(std::max<size_t>(utf8_len(static_cast<uint8_t>(text[off])), 1), text.size() - off);
    const int idx = static_cast<int>(sym.size());
    sym.push_back({idx - 1, off + n == text.size() ? -1 : idx + 1, off, n});
    off += n;
  }
  struct Pair {
    int left, right;
    double key;
    size_t size;
  };
  auto later = [](const Pair& a, const Pair& b) { return a.key > b.key || (a.key == b.key && a.left > b.left); };
  std::priority_queue<Pair, std::vector<Pair>, decltype(later)> queue(later);
  auto piece = [&](int i) { return text.substr(sym[i].start, sym[i].n); };
  auto try_add = [&](int left, int right) {
    if (left < 0 || right < 0) return;
    if (const std::optional<double> key = priority(piece(left), piece(right)))
      queue.push({left, right, *key, sym[left].n + sym[right].n});
  };
  for (size_t i = 1; i < sym.size(); ++i) try_add(static_cast<int>(i - 1), static_cast<int>(i));
  while (!queue.empty()) {
    const Pair p = queue.top();
    queue.pop();
    Symbol& l = sym[p.left];
    Symbol& r = sym[p.right];
    if (l.n == 0 || r.n == 0 || l.n + r.n != p.size) continue;  // stale: one side merged since
    l.n += r.n;
    r.n = 0;
    l.next = r.next;
    if (r.next >= 0) sym[r.next].prev = p.left;
    try_add(l.prev, p.left);
    try_add(p.left, l.next);
  }
  std::vector<std::string_view> out;
  if (!sym.empty())
    for (int i = 0; i != -1; i = sym[i].next) out.push_back(piece(i));
  return out;
}

}  // namespace

// SentencePiece BPE (as llama.cpp's llm_tokenizer_spm): start from UTF-8 characters and
// repeatedly merge the adjacent pair whose concatenation is the highest-scoring piece
// (leftmost on ties); characters no piece covers fall back to <0xXX> byte tokens.
void Tokenizer::encode_spm(std::string_view raw, bool prefix_space, std::vector<int32_t>& out) const {
  std::string text;
  if (prefix_space) text = kSpaceMark;
  for (char c : raw) {
    if (c == ' ')
      text += kSpaceMark;
    else
      text += c;
  }
  // A pair merges when its concatenation is a piece; the highest score goes first.
  const auto pieces = merge_pairs(text, [&](std::string_view a, std::string_view b) -> std::optional<double> {
    const int32_t id = find(std::string(a) + std::string(b));
    if (id < 0) return std::nullopt;
    return -static_cast<double>(v_.scores[id]);
  });
  for (std::string_view piece : pieces) {
    const int32_t id = find(piece);
    if (id >= 0) {
      out.push_back(id);
      continue;
    }
    for (char c : piece) {
      const int32_t bt = byte_tokens_[static_cast<uint8_t>(c)];
      if (bt >= 0 || v_.unk >= 0) out.push_back(bt >= 0 ? bt : v_.unk);  // else dropped, as llama.cpp does
    }
  }
}

namespace {

// Splits code points [0, n) into pre-tokens (as lengths), following the regexes in
// tokenizer.h by hand (no regex engine in the runtime).
std::vector<size_t> pre_tokenize(PreTokenizer pre, const std::vector<uint32_t>& cps) {
  std::vector<size_t> lens;
  const size_t end = cps.size();
  constexpr uint32_t kNone = 0xFFFFFFFF;
  auto cpt = [&](size_t p) { return p < end ? cps[p] : kNone; };
  auto letter = [&](size_t p) { return p < end && (cpt_flags(cps[p]) & kLetter); };
  auto number = [&](size_t p) { return p < end && (cpt_flags(cps[p]) & kNumber); };
  auto space = [&](size_t p) { return p < end && is_space(cps[p]); };
  // [^\s\p{L}\p{N}]: any code point that is none of these (unassigned ones too).
  auto other = [&](size_t p) { return p < end && !is_space(cps[p]) && !(cpt_flags(cps[p]) & (kLetter | kNumber)); };
  auto lower = [&](size_t p) {
    uint32_t c = cpt(p);
    return c >= 'A' && c <= 'Z' ? c + 32 : c;
  };
  size_t prev = 0;
  auto emit = [&](size_t to) {
    if (to > prev) lens.push_back(to - prev);
    prev = to;
  };
  for (size_t pos = 0; pos < end;) {
    const uint32_t c = cps[pos];
    // 's|'t|'re|'ve|'m|'ll|'d (case-insensitive for LLaMA-3)
    if (c == '\'' && pos + 1 < end) {
      const uint32_t n1 = pre == PreTokenizer::Llama3 ? lower(pos + 1) : cpt(pos + 1);
      const uint32_t n2 = pre == PreTokenizer::Llama3 ? lower(pos + 2) : cpt(pos + 2);
      if (n1 == 's' || n1 == 't' || n1 == 'm' || n1 == 'd') {
        emit(pos += 2);
        continue;
      }
      if ((n1 == 'r' && n2 == 'e') || (n1 == 'v' && n2 == 'e') || (n1 == 'l' && n2 == 'l')) {
        emit(pos += 3);
        continue;
      }
    }
    if (pre == PreTokenizer::Llama3) {
      // [^\r\n\p{L}\p{N}]?\p{L}+
      if (!(c == '\r' || c == '\n' || number(pos)) && (letter(pos) || letter(pos + 1))) {
        ++pos;
        while (letter(pos)) ++pos;
        emit(pos);
        continue;
      }
      // \p{N}{1,3}
      if (number(pos)) {
        size_t start = pos;
        while (number(pos)) {
          if (++pos - start >= 3) {
            emit(pos);
            start = pos;
          }
        }
        emit(pos);
        continue;
      }
      //  ?[^\s\p{L}\p{N}]+[\r\n]*
      const size_t q = c == ' ' ? pos + 1 : pos;
      if (other(q)) {
        pos = q;
        while (other(pos)) ++pos;
        while (cpt(pos) == '\r' || cpt(pos) == '\n') ++pos;
        emit(pos);
        continue;
      }
      // \s*[\r\n]+ | \s+(?!\S) | \s+
      size_t n_space = 0, last_newline_end = 0;
      while (space(pos + n_space)) {
        const uint32_t s = cps[pos + n_space];
        if (s == '\r' || s == '\n') last_newline_end = pos + n_space + 1;
        ++n_space;
      }
      if (last_newline_end > 0) {
        emit(pos = last_newline_end);
        continue;
      }
      if (n_space > 1 && pos + n_space < end) {
        emit(pos += n_space - 1);
        continue;
      }
      if (n_space > 0) {
        emit(pos += n_space);
        continue;
      }
      emit(++pos);
      continue;
    }
    // GPT-2: ' ?\p{L}+ | ?\p{N}+ | ?[^\s\p{L}\p{N}]+'
    const size_t q = c == ' ' ? pos + 1 : pos;
    if (letter(q) || number(q) || other(q)) {
      const bool is_l = letter(q), is_n = number(q);
      pos = q;
      while (is_l ? letter(pos) : is_n ? number(pos) : other(pos)) ++pos;
      emit(pos);
      continue;
    }
    size_t n_space = 0;
    while (space(pos + n_space)) ++n_space;
    if (n_space > 1 && pos + n_space < end) {  // \s+(?!\S)
      emit(pos += n_space - 1);
      continue;
    }
    if (n_space > 0) {
      emit(pos += n_space);
      continue;
    }
    emit(++pos);
  }
  return lens;
}

// The two regexes above, as vocabularies spell them; they are split by hand.
const char* kGpt2Regex = "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)";
const char* kLlama3Regex =
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|"
    "\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";

// Splits every chunk of `lens` with `re` over `text`: each match and each gap between
// matches becomes a piece (llama.cpp's unicode_regex_split_stl).
template <typename CharT>
std::vector<size_t> split_chunks(const std::basic_string<CharT>& text, const std::basic_regex<CharT>& re,
                                 const std::vector<size_t>& lens) {
  std::vector<size_t> out;
  size_t start = 0;
  for (size_t len : lens) {
    const auto begin = text.begin() + static_cast<long>(start), end = begin + static_cast<long>(len);
    size_t at = 0;
    for (std::regex_iterator<typename std::basic_string<CharT>::const_iterator> it(begin, end, re), last; it != last;
         ++it) {
      const auto pos = static_cast<size_t>(it->position()), n = static_cast<size_t>(it->length());
      if (pos > at) out.push_back(pos - at);
      if (n > 0) out.push_back(n);
      at = pos + n;
    }
    if (at < len) out.push_back(len - at);
    start += len;
  }
  return out;
}

// Regex pre-tokenizers other than GPT-2's and LLaMA-3's (falcon, deepseek-coder, ...).
// As llama.cpp does it with the standard library's regex: a regex using \p{L}, \p{N} or
// \p{P} runs over a "collapsed" text where every non-ASCII code point is replaced by one
// byte standing for its category; any other regex runs over UTF-32 with std::wregex.
std::vector<size_t> regex_pre_tokenize(const std::vector<std::string>& regexes, const std::vector<uint32_t>& cps) {
  std::vector<size_t> lens = {cps.size()};
  std::string collapsed(cps.size(), 0);
  std::wstring wide(cps.size(), 0);
  for (size_t i = 0; i < cps.size(); ++i) {
    const uint32_t cp = cps[i];
    const uint8_t f = cpt_flags(cp);
    const bool ws = cp > 0x7F && is_space(cp);
    collapsed[i] = static_cast<char>(cp < 0x80       ? cp
                                     : ws            ? 0x0B
                                     : (f & kNumber) ? 0xD1
                                     : (f & kLetter) ? 0xD2
                                     : (f & kPunct)  ? 0xD3
                                                     : 0xD0);
    wide[i] = static_cast<wchar_t>(ws ? 0x0B : cp);
  }
  // \p{..} inside the collapsed regex: the category byte plus its ASCII members.
  const std::pair<const char*, std::string> cats[] = {
      {"\\p{N}", std::string("\xD1") + "0-9"},
      {"\\p{L}", std::string("\xD2") + "A-Za-z"},
      {"\\p{P}", std::string("\xD3") + "!-#%-*,-/:-;?-@\\[-\\]_\\{\\}"}};
  for (const std::string& expr : regexes) {
    if (expr == kGpt2Regex || expr == kLlama3Regex) {
      const PreTokenizer p = expr == kGpt2Regex ? PreTokenizer::Gpt2 : PreTokenizer::Llama3;
      std::vector<size_t> next;
      size_t start = 0;
      for (size_t len : lens) {
        const std::vector<uint32_t> chunk(cps.begin() + static_cast<long>(start),
                                          cps.begin() + static_cast<long>(start + len));
        for (size_t l : pre_tokenize(p, chunk)) next.push_back(l);
        start += len;
      }
      lens.swap(next);
      continue;
    }
    if (expr.find("\\p{") != std::string::npos) {
      std::string re;
      bool inside = false;
      for (size_t i = 0; i < expr.size(); ++i) {
        if (expr[i] == '[' && (i == 0 || expr[i - 1] != '\\'))
          inside = true;
        else if (expr[i] == ']' && inside && expr[i - 1] != '\\')
          inside = false;
        bool replaced = false;
        for (const auto& [pat, cls] : cats)
          if (expr.compare(i, 5, pat) == 0) {
            re += inside ? cls : "[" + cls + "]";
            i += 4;
            replaced = true;
            break;
          }
        if (!replaced) re += expr[i];
      }
      lens = split_chunks(collapsed, std::regex(re), lens);
    } else {
      std::vector<uint32_t> rcps;
      std::vector<size_t> roffs;
      decode_utf8(expr, rcps, roffs);
      lens = split_chunks(wide, std::wregex(std::wstring(rcps.begin(), rcps.end())), lens);
    }
  }
  return lens;
}

}  // namespace

void Tokenizer::encode_bpe(std::string_view text, std::vector<int32_t>& out) const {
  std::vector<uint32_t> cps;
  std::vector<size_t> offs;
  decode_utf8(text, cps, offs);
  std::vector<size_t> lens;
  if (v_.pre == PreTokenizer::None)
    lens = {cps.size()};
  else if (v_.pre == PreTokenizer::Regexes)
    lens = regex_pre_tokenize(v_.pre_regexes, cps);
  else
    lens = pre_tokenize(v_.pre, cps);
  size_t at = 0;
  const ByteMap& bm = byte_map();
  for (size_t len : lens) {
    if (len == 0) continue;
    std::string word;
    for (size_t b = offs[at]; b < offs[at + len]; ++b) word += bm.to_unicode[static_cast<uint8_t>(text[b])];
    at += len;
    bpe_word(word, out);
  }
}

// Byte-level BPE over one pre-token: merge the adjacent pair of lowest rank (leftmost
// on ties) until none applies. With ignore_merges (LLaMA-3) a pre-token that is itself
// in the vocabulary is taken whole first.
void Tokenizer::bpe_word(const std::string& word, std::vector<int32_t>& out) const {
  if (v_.ignore_merges) {
    const int32_t id = find(word);
    if (id >= 0) {
      out.push_back(id);
      return;
    }
  }
  // A pair merges when "a b" is a merge rule; the lowest rank goes first.
  const auto pieces = merge_pairs(word, [&](std::string_view a, std::string_view b) -> std::optional<double> {
    auto it = merge_rank_.find(std::string(a) + " " + std::string(b));
    if (it == merge_rank_.end()) return std::nullopt;
    return static_cast<double>(it->second);
  });
  for (std::string_view sv : pieces) {
    const std::string piece(sv);
    const int32_t id = find(piece);
    if (id >= 0) {
      out.push_back(id);
      continue;
    }
    for (size_t k = 0; k < piece.size();) {  // not in the vocabulary: one token per byte character
      const size_t n = std::max<size_t>(utf8_len(static_cast<uint8_t>(piece[k])), 1);
      const int32_t b = find(piece.substr(k, n));
      if (b >= 0 || v_.unk >= 0) out.push_back(b >= 0 ? b : v_.unk);  // else dropped, as llama.cpp does
      k += n;
    }
  }
}

std::string Tokenizer::token_bytes(int32_t id, bool special) const {
  if (id < 0 || id >= n_tokens()) return {};
  const std::string& t = v_.tokens[id];
  switch (v_.types[id]) {
    case TokenType::Control:
    case TokenType::Unknown:
    case TokenType::Unused: return special ? t : std::string();
    case TokenType::Byte:
      if (v_.kind == VocabKind::Spm && t.size() == 6)
        return std::string(1, static_cast<char>(std::stoi(t.substr(3, 2), nullptr, 16)));
      break;
    case TokenType::UserDefined: return t;
    default: break;
  }
  if (v_.kind == VocabKind::Spm) {
    std::string s;
    for (size_t i = 0; i < t.size();) {
      if (t.compare(i, 3, kSpaceMark) == 0) {
        s += ' ';
        i += 3;
      } else {
        s += t[i++];
      }
    }
    return s;
  }
  std::vector<uint32_t> cps;
  std::vector<size_t> offs;
  if (!utf8_valid(t)) return t;
  decode_utf8(t, cps, offs);
  std::string s;
  const ByteMap& bm = byte_map();
  for (uint32_t cp : cps) {
    auto it = bm.to_byte.find(cp);
    if (it == bm.to_byte.end())
      s += encode_utf8(cp);
    else
      s += static_cast<char>(it->second);
  }
  return s;
}

std::string Tokenizer::decode(const std::vector<int32_t>& ids, bool special) const {
  std::string s;
  for (int32_t id : ids) s += token_bytes(id, special);
  return s;
}

std::string Tokenizer::detokenize(const std::vector<int32_t>& ids) const {
  std::string text = decode(ids);
  if (v_.kind == VocabKind::Spm && v_.add_space_prefix && !text.empty() && text[0] == ' ') text.erase(0, 1);
  return text;
}

// ---- streaming ----------------------------------------------------------------------

std::string StreamDecoder::push(std::string_view bytes) {
  pending_.append(bytes);
  std::string out;
  size_t i = 0;
  while (i < pending_.size()) {
    const auto c = static_cast<uint8_t>(pending_[i]);
    const size_t n = utf8_len(c);
    if (n == 0) {
      out += "\xEF\xBF\xBD";
      ++i;
      continue;
    }
    if (i + n > pending_.size()) {
      // Incomplete: hold it back, unless what arrived already cannot continue it.
      bool possible = true;
      for (size_t k = i + 1; k < pending_.size(); ++k) possible &= (static_cast<uint8_t>(pending_[k]) & 0xC0) == 0x80;
      if (possible) break;
      out += "\xEF\xBF\xBD";
      ++i;
      continue;
    }
    if (utf8_valid(std::string_view(pending_).substr(i, n))) {
      out.append(pending_, i, n);
      i += n;
    } else {
      out += "\xEF\xBF\xBD";
      ++i;
    }
  }
  pending_.erase(0, i);
  return out;
}

std::string StreamDecoder::flush() {
  std::string out;
  if (!pending_.empty()) out = "\xEF\xBF\xBD";
  pending_.clear();
  return out;
}

}  // namespace bitnetc::rt
