using System.Collections.Concurrent;
using System.Globalization;
using System.Net;
using System.Text;
using System.Text.Json;

namespace RsCapRet.Model.Tokenizers;

/// <summary>
/// CLIP's byte-level BPE text tokenizer (openai/CLIP simple_tokenizer.py, open_clip's tokenize) read from the
/// Hugging Face files vocab.json + merges.txt. Microsoft.ML.Tokenizers has no CLIP tokenizer; its BpeTokenizer
/// takes a pre-tokenizer and a "&lt;/w&gt;" suffix, but CLIP's clean-up, byte symbols and Python's lower-casing and
/// regex semantics would still live outside it, so the whole (small) BPE is here to be read against the reference.
/// </summary>
/// <remarks>
/// Text clean-up follows the reference (html unescape twice, whitespace collapsed and stripped, Python's
/// lower-casing) except for ftfy.fix_text (out of scope), and html unescaping uses
/// <see cref="WebUtility.HtmlDecode(string?)"/>, which knows the HTML4 named entities ("&amp;amp;", "&amp;quot;", numeric
/// references) but not Python's full HTML5 table or entities without the trailing ';'.
/// </remarks>
public sealed class ClipBpeTokenizer
{
    public const string StartToken = "<|startoftext|>";
    public const string EndToken = "<|endoftext|>";
    private const string EndOfWord = "</w>";

    private static readonly char[] ByteToChar = BuildByteToChar();
    private static readonly Dictionary<char, byte> CharToByte = ByteToChar.Select((c, b) => (c, b)).ToDictionary(x => x.c, x => (byte)x.b);

    private readonly Dictionary<string, int> _encoder;
    private readonly string[] _decoder;
    private readonly Dictionary<(string, string), int> _mergeRanks;
    private readonly ConcurrentDictionary<string, string[]> _cache = new(StringComparer.Ordinal);

    public string VocabPath { get; }
    public int VocabSize => _decoder.Length;
    public int StartId { get; }
    public int EndId { get; }

    private ClipBpeTokenizer(string vocabPath, Dictionary<string, int> encoder, Dictionary<(string, string), int> mergeRanks)
    {
        VocabPath = vocabPath;
        _encoder = encoder;
        _mergeRanks = mergeRanks;
        _decoder = new string[encoder.Values.Max() + 1];
        foreach (var (token, id) in encoder)
        {
            if (_decoder[id] != null) throw new InvalidDataException($"{vocabPath}: id {id} is used by both '{_decoder[id]}' and '{token}'");
            _decoder[id] = token;
        }
        if (Array.IndexOf(_decoder, null) is var hole and >= 0) throw new InvalidDataException($"{vocabPath}: no token has id {hole}");
        StartId = encoder.TryGetValue(StartToken, out var s) ? s : throw new InvalidDataException($"{vocabPath}: no '{StartToken}' token");
        EndId = encoder.TryGetValue(EndToken, out var e) ? e : throw new InvalidDataException($"{vocabPath}: no '{EndToken}' token");
        // Special tokens are whole words for BPE, as in the reference's initial cache.
        _cache[StartToken] = [StartToken];
        _cache[EndToken] = [EndToken];
    }

    /// <summary>Loads a Hugging Face CLIP tokenizer: vocab.json (token -> id) and merges.txt (one "a b" pair per line).</summary>
    public static ClipBpeTokenizer Load(string vocabJson, string mergesTxt)
    {
        var encoder = ReadVocab(vocabJson);
        var ranks = ReadMerges(mergesTxt);
        foreach (var ((first, second), _) in ranks)
            if (!encoder.ContainsKey(first + second))
                throw new InvalidDataException($"{mergesTxt}: merge '{first} {second}' yields '{first + second}', which {vocabJson} lacks");
        foreach (var c in ByteToChar)
            if (!encoder.ContainsKey(c.ToString()) || !encoder.ContainsKey(c + EndOfWord))
                throw new InvalidDataException($"{vocabJson}: byte symbol '{c}' (or '{c}{EndOfWord}') is missing; not a CLIP byte-level vocabulary");
        return new ClipBpeTokenizer(vocabJson, encoder, ranks);
    }

    /// <summary>BPE ids of <paramref name="text"/> after CLIP's clean-up and lower-casing, without start/end tokens.</summary>
    public IReadOnlyList<int> Encode(string text)
    {
        ArgumentNullException.ThrowIfNull(text);
        var ids = new List<int>();
        var cleaned = Clean(text);
        foreach (var word in SplitWords(cleaned))
        {
            // Each UTF-8 byte becomes one printable symbol, so every word is spelled in the 256 base symbols.
            var symbols = new StringBuilder();
            foreach (var b in Encoding.UTF8.GetBytes(word)) symbols.Append(ByteToChar[b]);
            foreach (var token in Bpe(symbols.ToString()))
                ids.Add(_encoder.TryGetValue(token, out var id) ? id : throw new InvalidDataException($"{VocabPath}: BPE produced '{token}', which the vocabulary lacks"));
        }
        return ids;
    }

    /// <summary>
    /// A text-encoder input row as open_clip/openai clip.tokenize builds it: start, ids, end, zero-padded to
    /// <paramref name="contextLength"/>. Too long texts are cut with the end token kept last, or rejected when
    /// <paramref name="truncate"/> is false.
    /// </summary>
    public long[] EncodeForModel(string text, int contextLength = 77, bool truncate = true)
    {
        if (contextLength < 2) throw new ArgumentOutOfRangeException(nameof(contextLength), contextLength, "The context must hold at least the start and end tokens.");
        var ids = Encode(text);
        var row = new long[contextLength];
        if (ids.Count + 2 > contextLength && !truncate)
            throw new ArgumentException($"Text of {ids.Count + 2} tokens (with start/end) is too long for context length {contextLength}: '{text}'", nameof(text));
        row[0] = StartId;
        var kept = Math.Min(ids.Count, contextLength - 2);
        for (var i = 0; i < kept; i++) row[i + 1] = ids[i];
        row[kept + 1] = EndId;
        return row;
    }

    /// <summary>
    /// Text of <paramref name="ids"/> as the reference decodes it: tokens joined, bytes restored as UTF-8 (invalid
    /// sequences become U+FFFD) and each end-of-word mark turned into a space ("a harbour" -> "a harbour ").
    /// Start/end tokens are kept as their text unless <paramref name="skipSpecialTokens"/> is set.
    /// </summary>
    public string Decode(IEnumerable<int> ids, bool skipSpecialTokens = false)
    {
        ArgumentNullException.ThrowIfNull(ids);
        var symbols = new StringBuilder();
        foreach (var id in ids)
        {
            if (id < 0 || id >= _decoder.Length) throw new ArgumentOutOfRangeException(nameof(ids), id, $"Token id outside the vocabulary of {VocabPath} (0..{_decoder.Length - 1}).");
            if (skipSpecialTokens && (id == StartId || id == EndId)) continue;
            symbols.Append(_decoder[id]);
        }
        var bytes = new List<byte>(symbols.Length);
        foreach (var c in symbols.ToString()) bytes.Add(CharToByte.TryGetValue(c, out var b) ? b : throw new InvalidDataException($"{VocabPath}: token symbol '{c}' is not a byte symbol"));
        return Encoding.UTF8.GetString(bytes.ToArray()).Replace(EndOfWord, " ");
    }

    /// <summary>Byte-pair merges of one word (already in byte symbols); the last symbol carries the end-of-word mark.</summary>
    private string[] Bpe(string word) => _cache.GetOrAdd(word, w =>
    {
        var parts = new List<string>(w.Length);
        for (var i = 0; i < w.Length - 1; i++) parts.Add(w[i].ToString());
        parts.Add(w[^1] + EndOfWord);
        while (parts.Count > 1)
        {
            // Merge the lowest-ranked adjacent pair everywhere it occurs (left to right, non-overlapping).
            var best = (First: "", Second: "");
            var bestRank = int.MaxValue;
            for (var i = 0; i < parts.Count - 1; i++)
                if (_mergeRanks.TryGetValue((parts[i], parts[i + 1]), out var rank) && rank < bestRank)
                    (best, bestRank) = ((parts[i], parts[i + 1]), rank);
            if (bestRank == int.MaxValue) break;
            var merged = new List<string>(parts.Count);
            for (var i = 0; i < parts.Count; i++)
            {
                if (i < parts.Count - 1 && parts[i] == best.First && parts[i + 1] == best.Second)
                {
                    merged.Add(best.First + best.Second);
                    i++;
                }
                else merged.Add(parts[i]);
            }
            parts = merged;
        }
        return parts.ToArray();
    });

    private static readonly string[] WholeWords = ["<|startoftext|>", "<|endoftext|>", "'s", "'t", "'re", "'ve", "'m", "'ll", "'d"];

    /// <summary>
    /// The reference pre-tokenizer regex
    /// <c>&lt;\|startoftext\|&gt;|&lt;\|endoftext\|&gt;|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+</c>,
    /// scanned by hand over code points: .NET's Regex sees the two halves of a surrogate pair as non-letters,
    /// Python's regex module sees the letter (e.g. math bold "𝐀").
    /// </summary>
    private static IEnumerable<string> SplitWords(string text)
    {
        var i = 0;
        while (i < text.Length)
        {
            var whole = Array.Find(WholeWords, w => string.Compare(text, i, w, 0, w.Length, StringComparison.OrdinalIgnoreCase) == 0);
            if (whole != null)
            {
                yield return text.Substring(i, whole.Length);
                i += whole.Length;
                continue;
            }
            var kind = KindAt(text, i, out var width);
            if (kind == CharKind.Space) { i += width; continue; }
            var start = i;
            i += width;
            // Letters and other symbols run on; a number is always a word of its own.
            if (kind != CharKind.Number)
                while (i < text.Length && KindAt(text, i, out var w) == kind) i += w;
            yield return text[start..i];
        }
    }

    private enum CharKind { Space, Letter, Number, Other }

    private static CharKind KindAt(string text, int index, out int width)
    {
        // A lone surrogate reads as U+FFFD (a symbol), as UTF-8 encoding later writes it.
        Rune.DecodeFromUtf16(text.AsSpan(index), out var rune, out width);
        if (Rune.IsWhiteSpace(rune)) return CharKind.Space;
        return Rune.GetUnicodeCategory(rune) switch
        {
            UnicodeCategory.UppercaseLetter or UnicodeCategory.LowercaseLetter or UnicodeCategory.TitlecaseLetter
                or UnicodeCategory.ModifierLetter or UnicodeCategory.OtherLetter => CharKind.Letter,
            UnicodeCategory.DecimalDigitNumber or UnicodeCategory.LetterNumber or UnicodeCategory.OtherNumber => CharKind.Number,
            _ => CharKind.Other,
        };
    }

    /// <summary>The reference's basic_clean + whitespace_clean + lower(), without ftfy.</summary>
    private static string Clean(string text)
    {
        var unescaped = WebUtility.HtmlDecode(WebUtility.HtmlDecode(text));
        return PythonLower(PythonStrip(CollapseWhitespace(PythonStrip(unescaped))));
    }

    // regex's \s+ -> ' ': the Unicode White_Space set, which is exactly char.IsWhiteSpace.
    private static string CollapseWhitespace(string text)
    {
        var sb = new StringBuilder(text.Length);
        var inSpace = false;
        foreach (var c in text)
        {
            if (char.IsWhiteSpace(c)) { if (!inSpace) sb.Append(' '); inSpace = true; }
            else { sb.Append(c); inSpace = false; }
        }
        return sb.ToString();
    }

    // Python's str.strip() also strips U+001C..U+001F (str.isspace), which \s does not collapse.
    private static string PythonStrip(string text)
    {
        static bool IsPythonSpace(char c) => char.IsWhiteSpace(c) || c is >= '\u001c' and <= '\u001f';
        int start = 0, end = text.Length;
        while (start < end && IsPythonSpace(text[start])) start++;
        while (end > start && IsPythonSpace(text[end - 1])) end--;
        return text[start..end];
    }

    // Python's str.lower() is .NET's invariant lower-casing plus the full mappings .NET leaves out:
    // 'İ' -> "i\u0307" and the word-final sigma 'Σ' -> 'ς'.
    private static string PythonLower(string text)
    {
        var lower = text.ToLowerInvariant();
        if (text.IndexOfAny(['\u0130', '\u03a3']) < 0) return lower;
        var sb = new StringBuilder(lower.Length + 4);
        for (var i = 0; i < text.Length; i++)
        {
            if (text[i] == '\u0130') sb.Append("i\u0307");
            else if (text[i] == '\u03a3') sb.Append(IsFinalSigma(text, i) ? '\u03c2' : '\u03c3');
            else sb.Append(lower[i]);
        }
        return sb.ToString();
    }

    // Unicode's Final_Sigma: a cased letter before (skipping case-ignorables) and none after.
    private static bool IsFinalSigma(string text, int at)
    {
        var before = at - 1;
        while (before >= 0 && IsCaseIgnorable(text[before])) before--;
        if (before < 0 || !IsCased(text[before])) return false;
        var after = at + 1;
        while (after < text.Length && IsCaseIgnorable(text[after])) after++;
        return after == text.Length || !IsCased(text[after]);
    }

    private static bool IsCased(char c) => char.GetUnicodeCategory(c) is UnicodeCategory.UppercaseLetter or UnicodeCategory.LowercaseLetter or UnicodeCategory.TitlecaseLetter;

    private static bool IsCaseIgnorable(char c) =>
        char.GetUnicodeCategory(c) is UnicodeCategory.NonSpacingMark or UnicodeCategory.EnclosingMark or UnicodeCategory.Format
            or UnicodeCategory.ModifierLetter or UnicodeCategory.ModifierSymbol
        || c is '\'' or '.' or ':' or '\u00b7' or '\u0387' or '\u2018' or '\u2019' or '\u2024' or '\u2027' or '\ufe13' or '\ufe52' or '\ufe55' or '\uff07' or '\uff0e' or '\uff1a';

    // GPT-2's bytes_to_unicode: printable Latin-1 bytes stand for themselves, the rest map to U+0100 upwards.
    private static char[] BuildByteToChar()
    {
        var map = new char[256];
        var next = 256;
        for (var b = 0; b < 256; b++)
        {
            var printable = b is >= '!' and <= '~' or >= 0xA1 and <= 0xAC or >= 0xAE and <= 0xFF;
            map[b] = printable ? (char)b : (char)next++;
        }
        return map;
    }

    private static Dictionary<string, int> ReadVocab(string path)
    {
        if (!File.Exists(path)) throw new FileNotFoundException($"{path}: CLIP vocab.json does not exist", path);
        try
        {
            var vocab = JsonSerializer.Deserialize<Dictionary<string, int>>(File.ReadAllText(path));
            if (vocab is null || vocab.Count == 0) throw new InvalidDataException($"{path}: empty CLIP vocabulary");
            if (vocab.Values.Min() < 0) throw new InvalidDataException($"{path}: negative token id");
            return new Dictionary<string, int>(vocab, StringComparer.Ordinal);
        }
        catch (JsonException e)
        {
            throw new InvalidDataException($"{path}: not a JSON object of token -> id: {e.Message}", e);
        }
    }

    private static Dictionary<(string, string), int> ReadMerges(string path)
    {
        if (!File.Exists(path)) throw new FileNotFoundException($"{path}: CLIP merges.txt does not exist", path);
        var ranks = new Dictionary<(string, string), int>();
        var lineNumber = 0;
        var rank = 0;
        foreach (var line in File.ReadLines(path))
        {
            lineNumber++;
            if ((lineNumber == 1 && line.StartsWith("#version", StringComparison.Ordinal)) || line.Length == 0) continue;
            var pair = line.Split(' ');
            if (pair.Length != 2 || pair[0].Length == 0 || pair[1].Length == 0)
                throw new InvalidDataException($"{path}:{lineNumber}: expected a merge 'first second', got '{line}'");
            // A repeated pair keeps its last rank, as Python's dict(zip(merges, range(...))) does.
            ranks[(pair[0], pair[1])] = rank++;
        }
        if (ranks.Count == 0) throw new InvalidDataException($"{path}: no merges");
        return ranks;
    }
}
