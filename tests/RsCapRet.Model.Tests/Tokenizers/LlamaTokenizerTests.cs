using System.Text.Json;
using RsCapRet.Core;
using RsCapRet.Model.Tokenizers;

namespace RsCapRet.Model.Tests.Tokenizers;

public class LlamaTokenizerTests
{
    private static string Dir => Path.Combine(RepositoryPaths.SharedDirectory(), "fixtures", "tokenizer", "llama2");
    private static readonly Lazy<LlamaTextTokenizer> Tokenizer = new(() => LlamaTextTokenizer.Load(Path.Combine(Dir, "tokenizer.model")));

    public sealed record Case(string text, int[] ids, string[]? pieces, string decoded);
    private sealed record Expected(int vocab_size, int bos_id, int eos_id, Case[] cases);
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
    public void IdsPiecesAndDecodeMatchReferenceSentencePiece(int index)
    {
        var c = Reference.Value.cases[index];
        var tok = Tokenizer.Value;
        Assert.Equal(c.ids, tok.EncodeSentencePiece(c.text));
        if (c.pieces != null) Assert.Equal(c.pieces, tok.Pieces(c.text));
        Assert.Equal(c.decoded, tok.Decode(c.ids));
        // Encode only differs from plain SentencePiece where the text holds the literal [RET].
        if (!c.text.Contains(LlamaTextTokenizer.RetToken))
        {
            Assert.Equal(c.ids, tok.Encode(c.text, addBos: false));
            Assert.Equal([tok.BosId, .. c.ids, tok.EosId], tok.Encode(c.text, addBos: true, addEos: true));
            Assert.Equal(c.decoded, tok.Decode(tok.Encode(c.text)));
        }
    }

    [Fact]
    public void SpecialIdsAndRetComeFromTheModel()
    {
        var e = Reference.Value;
        var tok = Tokenizer.Value;
        Assert.Equal(e.vocab_size, tok.BaseVocabSize);
        Assert.Equal(e.bos_id, tok.BosId);
        Assert.Equal(e.eos_id, tok.EosId);
        Assert.Equal(32000, tok.RetId);
        Assert.Equal(32001, tok.VocabSize);
        Assert.Equal("[RET]", LlamaTextTokenizer.RetToken);
    }

    [Fact]
    public void EncodeAddsBosByDefaultAndEosOnRequest()
    {
        var tok = Tokenizer.Value;
        var plain = tok.EncodeSentencePiece("a golf course");
        Assert.Equal([tok.BosId, .. plain], tok.Encode("a golf course"));
        Assert.Equal([.. plain, tok.EosId], tok.Encode("a golf course", addBos: false, addEos: true));
        Assert.Equal([tok.BosId], tok.Encode(""));
    }

    [Fact]
    public void LiteralRetTextBecomesTheRetId()
    {
        var tok = Tokenizer.Value;
        Assert.Equal([tok.RetId], tok.Encode("[RET]", addBos: false));
        var harbour = tok.EncodeSentencePiece("a harbour");
        var ships = tok.EncodeSentencePiece("ships");
        Assert.Equal([tok.BosId, .. harbour, tok.RetId], tok.Encode("a harbour[RET]"));
        // Whitespace touching [RET] is dropped, so no stray "▁" piece appears before or after it.
        Assert.Equal([tok.BosId, .. harbour, tok.RetId], tok.Encode("a harbour [RET]"));
        Assert.Equal([.. harbour, tok.RetId, .. ships, tok.RetId, tok.RetId], tok.Encode("a harbour [RET] ships[RET][RET]", addBos: false));
        // Without the split the same text is four ordinary pieces.
        Assert.DoesNotContain(tok.RetId, tok.EncodeSentencePiece("a harbour [RET]"));
    }

    [Fact]
    public void RetrievalAndTrainingSequencesEndWithRet()
    {
        var tok = Tokenizer.Value;
        var text = tok.EncodeSentencePiece("storage tanks");
        Assert.Equal([tok.BosId, .. text, tok.RetId], tok.EncodeForRetrieval("storage tanks"));
        Assert.Equal(tok.EncodeForRetrieval("storage tanks"), tok.EncodeForRetrieval("storage tanks  "));
        var caption = tok.EncodeCaptionForTraining("a baseball field");
        Assert.Equal([tok.BosId, .. tok.EncodeSentencePiece("a baseball field"), tok.RetId, tok.EosId], caption);
        Assert.Equal("a baseball field", tok.Decode(caption));
    }

    [Fact]
    public void DecodeSkipsSpecialAndPaddingIds()
    {
        var tok = Tokenizer.Value;
        var ids = tok.EncodeSentencePiece("dense residential area");
        Assert.Equal("dense residential area", tok.Decode([tok.BosId, .. ids, tok.RetId, tok.EosId, -100, -1, tok.VocabSize + 5]));
        Assert.Equal("", tok.Decode([tok.BosId, tok.RetId, tok.EosId]));
    }

    [Fact]
    public void RetIdCanComeFromTheCheckpoint()
    {
        var tok = LlamaTextTokenizer.Load(Path.Combine(Dir, "tokenizer.model"), retId: 32005);
        Assert.Equal(32005, tok.RetId);
        Assert.Equal(32006, tok.VocabSize);
        Assert.Equal([32005], tok.Encode("[RET]", addBos: false));
    }

    [Fact]
    public void MissingOrCorruptModelFileIsNamed()
    {
        var missing = Path.Combine(Path.GetTempPath(), "no-tokenizer.model");
        Assert.Contains(missing, Assert.Throws<FileNotFoundException>(() => LlamaTextTokenizer.Load(missing)).Message);
        var junk = Path.GetTempFileName();
        File.WriteAllText(junk, "not a sentencepiece model");
        try { Assert.Contains(junk, Assert.Throws<InvalidDataException>(() => LlamaTextTokenizer.Load(junk)).Message); }
        finally { File.Delete(junk); }
    }
}
