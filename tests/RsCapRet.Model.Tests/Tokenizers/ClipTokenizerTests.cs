using System.Text.Json;
using RsCapRet.Core;
using RsCapRet.Model.Tokenizers;

namespace RsCapRet.Model.Tests.Tokenizers;

public class ClipTokenizerTests
{
    private static string Dir => Path.Combine(RepositoryPaths.SharedDirectory(), "fixtures", "tokenizer", "clip");
    private static string VocabPath => Path.Combine(Dir, "vocab.json");
    private static string MergesPath => Path.Combine(Dir, "merges.txt");
    private static readonly Lazy<ClipBpeTokenizer> Tokenizer = new(() => ClipBpeTokenizer.Load(VocabPath, MergesPath));

    public sealed record Case(string text, int[] ids, string decoded);
    private sealed record Expected(int start_of_text, int end_of_text, int context_length, Case[] cases);
    private static readonly Lazy<Expected> Reference = new(() =>
        JsonSerializer.Deserialize<Expected>(File.ReadAllText(Path.Combine(Dir, "expected.json")))!);

    public static TheoryData<int> CaseIndices()
    {
        var data = new TheoryData<int>();
        for (var i = 0; i < Reference.Value.cases.Length; i++) data.Add(i);
        return data;
    }

    [Fact]
    public void ReferenceFixtureHasCases() => Assert.True(Reference.Value.cases.Length >= 10);

    [Theory]
    [MemberData(nameof(CaseIndices))]
    public void IdsAndDecodeMatchReferenceSimpleTokenizer(int index)
    {
        var c = Reference.Value.cases[index];
        var tok = Tokenizer.Value;
        Assert.Equal(c.ids, tok.Encode(c.text));
        Assert.Equal(c.decoded, tok.Decode(c.ids));
    }

    [Theory]
    [MemberData(nameof(CaseIndices))]
    public void ModelInputIsStartIdsEndZeroPadded(int index)
    {
        var e = Reference.Value;
        var c = e.cases[index];
        var row = Tokenizer.Value.EncodeForModel(c.text, e.context_length);
        long[] expected = [e.start_of_text, .. c.ids.Select(i => (long)i), e.end_of_text, .. new long[e.context_length - c.ids.Length - 2]];
        Assert.Equal(expected, row);
    }

    [Fact]
    public void SpecialIdsComeFromTheVocabulary()
    {
        var tok = Tokenizer.Value;
        Assert.Equal(Reference.Value.start_of_text, tok.StartId);
        Assert.Equal(Reference.Value.end_of_text, tok.EndId);
        Assert.Equal(49408, tok.VocabSize);
        // The reference pre-tokenizer keeps the special tokens whole when they appear in text.
        Assert.Equal([tok.StartId, 320, tok.EndId], tok.Encode("<|startoftext|>a <|endoftext|>"));
        Assert.Equal("a harbour ", tok.Decode([tok.StartId, .. tok.Encode("A harbour"), tok.EndId], skipSpecialTokens: true));
        Assert.Equal("<|startoftext|>a <|endoftext|>", tok.Decode([tok.StartId, 320, tok.EndId]));
    }

    [Fact]
    public void LongTextIsTruncatedWithTheEndTokenLast()
    {
        var tok = Tokenizer.Value;
        var text = string.Join(" ", Enumerable.Repeat("harbour", 100));
        var harbour = Assert.Single(tok.Encode("harbour"));
        var row = tok.EncodeForModel(text, contextLength: 16);
        Assert.Equal([tok.StartId, .. Enumerable.Repeat((long)harbour, 14), tok.EndId], row);
        var exact = tok.EncodeForModel(string.Join(" ", Enumerable.Repeat("harbour", 14)), contextLength: 16, truncate: false);
        Assert.Equal(row, exact);
        Assert.Throws<ArgumentException>(() => tok.EncodeForModel(text, contextLength: 16, truncate: false));
        Assert.Throws<ArgumentOutOfRangeException>(() => tok.EncodeForModel(text, contextLength: 1));
    }

    [Fact]
    public void NonAsciiTextRoundTripsThroughByteSymbols()
    {
        var tok = Tokenizer.Value;
        var text = "são paulo 東京 🛰️ façade";
        var ids = tok.Encode(text);
        Assert.All(ids, id => Assert.InRange(id, 0, tok.VocabSize - 1));
        Assert.Equal("são paulo 東京 🛰️ façade ", tok.Decode(ids));
        Assert.Equal(tok.Encode("Tab\tand\nnewline  &quot;quoted&quot;"), tok.Encode("tab and newline \"quoted\""));
    }

    [Fact]
    public void CleanUpFollowsPythonRatherThanDotNetDefaults()
    {
        var tok = Tokenizer.Value;
        // Python's lower(): word-final sigma and the dotted capital I's two-code-point lower case.
        Assert.Equal("οδος σπιτια ", tok.Decode(tok.Encode("ΟΔΟΣ ΣΠΙΤΙΑ")));
        Assert.Equal("i \u0307 stanbul ", tok.Decode(tok.Encode("İstanbul")));
        // A letter outside the BMP belongs to the surrounding letter run, as in Python's regex.
        Assert.Equal("a𝐀b ", tok.Decode(tok.Encode("a𝐀b")));
        Assert.Equal("a 🛰 b ", tok.Decode(tok.Encode("a🛰b")));
        // U+001C is stripped at the ends (str.strip) but is not whitespace inside (regex \s).
        Assert.Equal("a \u001c b ", tok.Decode(tok.Encode("\u001ca\u001cb\u001c")));
        // A lone surrogate becomes U+FFFD instead of failing.
        Assert.Equal("a \ufffd ", tok.Decode(tok.Encode("a\ud800")));
    }

    [Fact]
    public void DecodeRejectsIdsOutsideTheVocabulary()
    {
        var tok = Tokenizer.Value;
        Assert.Throws<ArgumentOutOfRangeException>(() => tok.Decode([320, tok.VocabSize]));
        Assert.Throws<ArgumentOutOfRangeException>(() => tok.Decode([-1]));
    }

    [Fact]
    public void MissingOrCorruptFilesAreNamed()
    {
        var missing = Path.Combine(Path.GetTempPath(), "no-such-vocab.json");
        Assert.Contains(missing, Assert.Throws<FileNotFoundException>(() => ClipBpeTokenizer.Load(missing, MergesPath)).Message);
        var junk = Path.GetTempFileName();
        try
        {
            File.WriteAllText(junk, "not json");
            Assert.Contains(junk, Assert.Throws<InvalidDataException>(() => ClipBpeTokenizer.Load(junk, MergesPath)).Message);
            File.WriteAllText(junk, "#version: 0.2\ni n\nthree parts here\n");
            var badMerges = Assert.Throws<InvalidDataException>(() => ClipBpeTokenizer.Load(VocabPath, junk)).Message;
            Assert.Contains($"{junk}:3", badMerges);
            File.WriteAllText(junk, "{\"a\": 0, \"b\": 1}");
            Assert.Contains(junk, Assert.Throws<InvalidDataException>(() => ClipBpeTokenizer.Load(junk, MergesPath)).Message);
        }
        finally { File.Delete(junk); }
    }
}
