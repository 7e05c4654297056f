#include "io/json.h"

#include <cmath>
#include <cstdlib>
#include <unordered_set>

#include "util/error.h"

namespace dfm {

const Json* Json::find(const std::string& key) const {
  for (const auto& kv : object) {
    if (kv.first == key) return &kv.second;
  }
  return nullptr;
}

namespace {

constexpr int kMaxDepth = 64;

class Parser {
 public:
  Parser(const char* text, size_t len) : s_(text), n_(len) {}

  Json parse_document() {
    skip_ws();
    Json v = parse_value(0);
    skip_ws();
    if (i_ != n_) fail("unexpected data after the JSON value");
    return v;
  }

 private:
  const char* s_;
  size_t n_;
  size_t i_ = 0;

  [[noreturn]] void fail(const std::string& what, const char* code = "InvalidJson") const {
    throw DfError(code, "invalid JSON header at byte " + std::to_string(i_) + ": " + what);
  }

  void skip_ws() {
    while (i_ < n_ && (s_[i_] == ' ' || s_[i_] == '\t' || s_[i_] == '\n' || s_[i_] == '\r')) ++i_;
  }

  char peek() const { return i_ < n_ ? s_[i_] : '\0'; }

  void expect(char c) {
    if (i_ >= n_ || s_[i_] != c) fail(std::string("expected '") + c + "'");
    ++i_;
  }

  void literal(const char* word) {
    for (const char* p = word; *p; ++p) {
      if (i_ >= n_ || s_[i_] != *p) fail(std::string("invalid literal, expected ") + word);
      ++i_;
    }
  }

  Json parse_value(int depth) {
    if (depth > kMaxDepth) fail("nesting deeper than 64 levels");
    Json v;
    switch (peek()) {
      case '{': parse_object(v, depth); break;
      case '[': parse_array(v, depth); break;
      case '"': v.kind = Json::Kind::String; v.string = parse_string(); break;
      case 't': literal("true"); v.kind = Json::Kind::Bool; v.boolean = true; break;
      case 'f': literal("false"); v.kind = Json::Kind::Bool; break;
      case 'n': literal("null"); break;
      default:
        if (peek() == '-' || (peek() >= '0' && peek() <= '9')) {
          parse_number(v);
        } else if (i_ >= n_) {
          fail("unexpected end of header");
        } else {
          fail(std::string("unexpected character '") + peek() + "'");
        }
    }
    return v;
  }

  void parse_object(Json& v, int depth) {
    v.kind = Json::Kind::Object;
    expect('{');
    skip_ws();
    if (peek() == '}') { ++i_; return; }
    std::unordered_set<std::string> seen;
    for (;;) {
      skip_ws();
      if (peek() != '"') fail("expected a string key");
      size_t key_at = i_;
      std::string key = parse_string();
      if (!seen.insert(key).second) {
        i_ = key_at;
        throw DfError(depth == 0 ? "DuplicateTopLevelKey" : "DuplicateKey",
                      "duplicate key \"" + key + "\" at byte " + std::to_string(key_at), key);
      }
      skip_ws();
      expect(':');
      skip_ws();
      Json item = parse_value(depth + 1);
      v.object.emplace_back(std::move(key), std::move(item));
      skip_ws();
      if (peek() == ',') { ++i_; continue; }
      if (peek() == '}') { ++i_; return; }
      fail("expected ',' or '}' in object");
    }
  }

  void parse_array(Json& v, int depth) {
    v.kind = Json::Kind::Array;
    expect('[');
    skip_ws();
    if (peek() == ']') { ++i_; return; }
    for (;;) {
      skip_ws();
      v.array.push_back(parse_value(depth + 1));
      skip_ws();
      if (peek() == ',') { ++i_; continue; }
      if (peek() == ']') { ++i_; return; }
      fail("expected ',' or ']' in array");
    }
  }

  static void append_utf8(std::string& out, uint32_t cp) {
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
  }

  uint32_t hex4() {
    if (n_ - i_ < 4) fail("truncated \\u escape");
    uint32_t v = 0;
    for (int k = 0; k < 4; ++k) {
      char c = s_[i_++];
      v <<= 4;
      if (c >= '0' && c <= '9') v |= static_cast<uint32_t>(c - '0');
      else if (c >= 'a' && c <= 'f') v |= static_cast<uint32_t>(c - 'a' + 10);
      else if (c >= 'A' && c <= 'F') v |= static_cast<uint32_t>(c - 'A' + 10);
      else fail("invalid hex digit in \\u escape");
    }
    return v;
  }

  // Copies one UTF-8 encoded code point starting at s_[i_], validating it.
  void copy_utf8(std::string& out) {
    const unsigned char c = static_cast<unsigned char>(s_[i_]);
    int extra;
    uint32_t cp, min;
    if (c < 0x80) { out += static_cast<char>(c); ++i_; return; }
    if ((c & 0xE0) == 0xC0) { extra = 1; cp = c & 0x1F; min = 0x80; }
    else if ((c & 0xF0) == 0xE0) { extra = 2; cp = c & 0x0F; min = 0x800; }
    else if ((c & 0xF8) == 0xF0) { extra = 3; cp = c & 0x07; min = 0x10000; }
    else fail("invalid UTF-8 byte", "InvalidUtf8");
    if (n_ - i_ <= static_cast<size_t>(extra)) fail("truncated UTF-8 sequence", "InvalidUtf8");
    for (int k = 1; k <= extra; ++k) {
      const unsigned char d = static_cast<unsigned char>(s_[i_ + k]);
      if ((d & 0xC0) != 0x80) fail("invalid UTF-8 continuation byte", "InvalidUtf8");
      cp = (cp << 6) | (d & 0x3F);
    }
    if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) {
      fail("invalid UTF-8 code point", "InvalidUtf8");
    }
    out.append(s_ + i_, static_cast<size_t>(extra) + 1);
    i_ += static_cast<size_t>(extra) + 1;
  }

  std::string parse_string() {
    expect('"');
    std::string out;
    for (;;) {
      if (i_ >= n_) fail("unterminated string");
      const char c = s_[i_];
      if (c == '"') { ++i_; return out; }
      if (static_cast<unsigned char>(c) < 0x20) fail("control character in string");
      if (c != '\\') { copy_utf8(out); continue; }
      ++i_;
      if (i_ >= n_) fail("unterminated escape");
      const char e = s_[i_++];
      switch (e) {
        case '"': out += '"'; break;
        case '\\': out += '\\'; break;
        case '/': out += '/'; break;
        case 'b': out += '\b'; break;
        case 'f': out += '\f'; break;
        case 'n': out += '\n'; break;
        case 'r': out += '\r'; break;
        case 't': out += '\t'; break;
        case 'u': {
          uint32_t cp = hex4();
          if (cp >= 0xD800 && cp <= 0xDBFF) {
            if (n_ - i_ < 2 || s_[i_] != '\\' || s_[i_ + 1] != 'u') fail("unpaired surrogate in \\u escape");
            i_ += 2;
            const uint32_t lo = hex4();
            if (lo < 0xDC00 || lo > 0xDFFF) fail("invalid low surrogate in \\u escape");
            cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
          } else if (cp >= 0xDC00 && cp <= 0xDFFF) {
            fail("unpaired surrogate in \\u escape");
          }
          append_utf8(out, cp);
          break;
        }
        default: fail("invalid escape character");
      }
    }
  }

  void parse_number(Json& v) {
    const size_t start = i_;
    bool negative = false, integral = true;
    if (peek() == '-') { negative = true; ++i_; }
    if (peek() == '0') {
      ++i_;
    } else if (peek() >= '1' && peek() <= '9') {
      while (peek() >= '0' && peek() <= '9') ++i_;
    } else {
      fail("invalid number");
    }
    if (peek() == '.') {
      integral = false;
      ++i_;
      if (!(peek() >= '0' && peek() <= '9')) fail("invalid number: digit expected after '.'");
      while (peek() >= '0' && peek() <= '9') ++i_;
    }
    if (peek() == 'e' || peek() == 'E') {
      integral = false;
      ++i_;
      if (peek() == '+' || peek() == '-') ++i_;
      if (!(peek() >= '0' && peek() <= '9')) fail("invalid number: digit expected in exponent");
      while (peek() >= '0' && peek() <= '9') ++i_;
    }
    const std::string text(s_ + start, i_ - start);
    v.kind = Json::Kind::Number;
    v.number = std::strtod(text.c_str(), nullptr);
    if (integral && !negative) {
      uint64_t u = 0;
      bool fits = true;
      for (char c : text) {
        const uint64_t d = static_cast<uint64_t>(c - '0');
        if (u > (UINT64_MAX - d) / 10) { fits = false; break; }
        u = u * 10 + d;
      }
      v.is_uint = fits;
      v.uint = fits ? u : 0;
    }
  }
};

}  // namespace

Json parse_json(const char* text, size_t len) { return Parser(text, len).parse_document(); }

}  // namespace dfm
