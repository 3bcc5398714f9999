using TorchSharp.Modules;
using static TorchSharp.torch;

namespace RsCapRet.Model;

/// <summary>
/// The dual encoder of a backbone adaptation run: an imported ResNet (only its last blocks train) and either a CLIP
/// text tower trained from scratch or a pretrained sentence encoder (frozen: its vectors; or its last layers training
/// over hidden states its frozen layers computed), each with a linear projection into the shared space, and CLIP's
/// learnable scale.
/// </summary>
public sealed class BackboneDualEncoder : nn.Module
{
    private readonly ResNetVisionModel vision;
    private readonly ClipTextTransformer? text_model;
    private readonly BertTopLayers? text_encoder_top;
    private readonly Linear visual_projection, text_projection;
    private readonly Parameter logit_scale;

    /// <param name="text">The text tower to train, or null when the text side is a pretrained encoder's of <paramref name="frozenTextWidth"/>.</param>
    /// <param name="textEncoderTop">The pretrained encoder's last layers when they train (null: its vectors are fixed).</param>
    public BackboneDualEncoder(ResNetVisionModel backbone, ClipTowerConfig? text, int frozenTextWidth, int projectionDim, double logitScaleInit,
        BertTopLayers? textEncoderTop = null) : base(nameof(BackboneDualEncoder))
    {
        vision = backbone;
        text_model = text is null ? null : new ClipTextTransformer(text);
        text_encoder_top = textEncoderTop;
        visual_projection = nn.Linear(backbone.HiddenSize, projectionDim, hasBias: false);
        text_projection = nn.Linear(text?.HiddenSize ?? frozenTextWidth, projectionDim, hasBias: false);
        logit_scale = new Parameter(tensor((float)logitScaleInit));
        RegisterComponents();
        // The new parts start small (GPT-style); the backbone keeps its pretrained weights.
        if (text_model is not null) ModuleInit.GptStyle(text_model);
        ModuleInit.GptStyle(visual_projection);
        ModuleInit.GptStyle(text_projection);
    }

    public ResNetVisionModel Vision => vision;
    public Tensor LogitScale => logit_scale;

    /// <summary>Projected image embeddings from the output of the backbone's first <paramref name="frozenBlocks"/> blocks.</summary>
    public Tensor ImageEmbedsFrom(Tensor features, int frozenBlocks)
    {
        using var scope = NewDisposeScope();
        return visual_projection.forward(vision.PooledFrom(features, frozenBlocks)).MoveToOuterDisposeScope();
    }

    /// <summary>Projected text embeddings for CLIP token rows [B, T].</summary>
    public Tensor TextEmbeds(Tensor ids)
    {
        using var scope = NewDisposeScope();
        var tower = text_model ?? throw new InvalidOperationException("this dual encoder's text side is a frozen encoder's vectors");
        return text_projection.forward(tower.Forward(ids).Pooled).MoveToOuterDisposeScope();
    }

    /// <summary>Projected text embeddings for a frozen sentence encoder's vectors [B, width].</summary>
    public Tensor TextEmbedsFromVectors(Tensor vectors) => text_projection.forward(vectors);

    /// <summary>Projected text embeddings for the hidden states [B, T, width] entering the encoder's trained last layers, and their mask [B, T].</summary>
    public Tensor TextEmbedsFromHidden(Tensor hidden, Tensor mask)
    {
        using var scope = NewDisposeScope();
        var top = text_encoder_top ?? throw new InvalidOperationException("this dual encoder's text encoder has no training layers");
        return text_projection.forward(top.Pooled(hidden, mask)).MoveToOuterDisposeScope();
    }

    /// <summary>Parameters that train, split into the backbone's and the new parts' (text tower, projections, scale).</summary>
    public (List<(string Name, Parameter Parameter)> Backbone, List<(string Name, Parameter Parameter)> Others) TrainableParameters()
    {
        var all = named_parameters().Where(p => p.parameter.requires_grad).ToList();
        return (all.Where(p => p.name.StartsWith("vision.", StringComparison.Ordinal)).ToList(),
                all.Where(p => !p.name.StartsWith("vision.", StringComparison.Ordinal)).ToList());
    }
}
