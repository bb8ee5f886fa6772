"""Merchant category codes (ISO 18245) in Chinese and English: each code's own name, its
ISO 18245 group, and the spending category people recognise (餐饮, 交通 …).

Pure: no database, no web. The table holds the codes card schemes and Chinese acquirers
use in practice (UnionPay's MCC list follows ISO 18245; airline, car-rental and hotel-chain
codes 3000–3999 are named by their range). A code not in the table is still described by
its ISO group; a malformed code by :data:`UNKNOWN`.

Used by the merchant console (the merchant's own category), the operator console (merchant
lists, campaign scopes, the MCC picker) and the residents' spending overview.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache


@dataclass(frozen=True)
class Group:
    """An ISO 18245 range of codes."""

    first: int
    last: int
    name_zh: str
    name_en: str


@dataclass(frozen=True)
class Mcc:
    """One merchant category code, described."""

    code: str
    name_zh: str
    name_en: str
    group: Group
    category: str  # spending category key (see CATEGORY_NAMES)

    def name(self, lang: str) -> str:
        """The code's name in ``lang`` (``zh_CN`` or anything else for English)."""
        return self.name_zh if lang.startswith("zh") else self.name_en

    @property
    def category_zh(self) -> str:
        return CATEGORY_NAMES[self.category][0]

    @property
    def category_en(self) -> str:
        return CATEGORY_NAMES[self.category][1]

    def category_name(self, lang: str) -> str:
        """The spending category in ``lang``."""
        return self.category_zh if lang.startswith("zh") else self.category_en


# ISO 18245 (as the card schemes publish it): the ranges in order, covering 0000–9999.
GROUPS: tuple[Group, ...] = (
    Group(0, 1499, "农业服务", "Agricultural services"),
    Group(1500, 2999, "承包服务", "Contracted services"),
    Group(3000, 3299, "航空公司", "Airlines"),
    Group(3300, 3499, "汽车租赁", "Car rental"),
    Group(3500, 3999, "住宿", "Lodging"),
    Group(4000, 4799, "交通运输", "Transportation services"),
    Group(4800, 4999, "公用事业与通信", "Utilities and telecommunications"),
    Group(5000, 5599, "零售", "Retail outlets"),
    Group(5600, 5699, "服装", "Clothing stores"),
    Group(5700, 7299, "其他商店", "Miscellaneous stores"),
    Group(7300, 7999, "商业服务", "Business services"),
    Group(8000, 8999, "专业服务与会员组织", "Professional services and memberships"),
    Group(9000, 9999, "政府服务", "Government services"),
)

# Spending categories: key → (Chinese, English). Order is the order pages list them.
CATEGORY_NAMES: dict[str, tuple[str, str]] = {
    "dining": ("餐饮", "Dining"),
    "groceries": ("超市生鲜", "Groceries"),
    "shopping": ("购物", "Shopping"),
    "clothing": ("服饰", "Clothing"),
    "transport": ("交通", "Transport"),
    "health": ("医疗健康", "Health"),
    "utilities": ("生活缴费", "Utilities"),
    "entertainment": ("休闲娱乐", "Entertainment"),
    "education": ("教育", "Education"),
    "travel": ("旅行住宿", "Travel"),
    "other": ("其他", "Other"),
}

# (first MCC, last MCC, category key): checked in order, first match wins.
CATEGORY_RANGES: tuple[tuple[int, int, str], ...] = (
    (5811, 5814, "dining"),
    (5411, 5411, "groceries"),
    (5422, 5499, "groceries"),
    (5912, 5912, "health"),
    (8011, 8099, "health"),
    (4111, 4131, "transport"),
    (4784, 4789, "transport"),
    (5541, 5542, "transport"),
    (4812, 4816, "utilities"),
    (4899, 4900, "utilities"),
    (5611, 5699, "clothing"),
    (5311, 5399, "shopping"),
    (5200, 5261, "shopping"),
    (5712, 5735, "shopping"),
    (5940, 5999, "shopping"),
    (7832, 7841, "entertainment"),
    (7911, 7999, "entertainment"),
    (8211, 8299, "education"),
    (3000, 3999, "travel"),
    (7011, 7012, "travel"),
    (4511, 4511, "travel"),
    (4411, 4411, "travel"),
    (4722, 4722, "travel"),
)

# code|中文|English — the codes in use (ISO 18245 / UnionPay), sorted by code.
_TABLE = """
0742|兽医服务|Veterinary services
0763|农业合作社|Agricultural cooperatives
0780|园艺及景观服务|Landscaping and horticultural services
1520|住宅及商业建筑总承包|General contractors, residential and commercial
1711|暖通空调及水暖承包|Heating, plumbing and air-conditioning contractors
1731|电气承包|Electrical contractors
1740|砖石、石膏、瓷砖承包|Masonry, stonework, tile setting and plastering contractors
1750|木工承包|Carpentry contractors
1761|屋面及金属板承包|Roofing, siding and sheet metal contractors
1771|混凝土工程承包|Concrete work contractors
1799|其他专业承包|Special trade contractors
2741|出版及印刷|Miscellaneous publishing and printing
2791|排版及制版服务|Typesetting, plate making and related services
2842|清洁及保养服务|Specialty cleaning, polishing and sanitation preparations
3000|航空公司|Airlines
3351|汽车租赁公司|Car rental agencies
3501|酒店集团|Hotel chains
4011|铁路货运|Railroads, freight
4111|市内及近郊通勤交通|Local and suburban commuter transport, including ferries
4112|铁路客运|Passenger railways
4119|救护车服务|Ambulance services
4121|出租车及网约车|Taxicabs and limousines
4131|长途客运|Bus lines
4214|货运及快递|Motor freight carriers, trucking and delivery
4215|快递服务|Courier services, air and ground
4225|仓储服务|Public warehousing and storage
4411|邮轮|Cruise lines
4457|船只租赁|Boat rentals and leasing
4468|码头及船舶服务|Marinas, marine service and supplies
4511|航空公司及机票|Airlines and air carriers
4582|机场服务|Airports, flying fields and airport terminals
4722|旅行社|Travel agencies and tour operators
4784|路桥通行费|Tolls and bridge fees
4789|其他交通服务|Transportation services
4812|通信设备及电话销售|Telecommunication equipment and telephone sales
4814|电信服务|Telecommunication services
4816|网络服务|Computer network and information services
4821|电报服务|Telegraph services
4829|汇款服务|Money orders and wire transfer
4899|有线电视及付费电视|Cable, satellite and other pay television and radio
4900|水电燃气|Utilities: electric, gas, water and sanitary
5013|汽车零配件批发|Motor vehicle supplies and new parts
5021|办公家具批发|Office and commercial furniture
5039|建材批发|Construction materials
5044|办公及影印设备|Photographic, photocopy and microfilm equipment
5045|电脑及软件批发|Computers, peripherals and software
5046|商用设备|Commercial equipment
5047|医疗器械及用品|Medical, dental and hospital equipment and supplies
5051|金属制品|Metal service centres and offices
5065|电子元器件|Electrical parts and equipment
5072|五金器材|Hardware equipment and supplies
5074|水暖及供热设备|Plumbing and heating equipment and supplies
5085|工业用品|Industrial supplies
5094|珠宝及贵金属批发|Precious stones and metals, watches and jewellery
5099|其他耐用品批发|Durable goods
5111|文具及办公用品批发|Stationery, office supplies and printing paper
5122|药品批发|Drugs, drug proprietaries and druggists' sundries
5131|布匹及针织品|Piece goods, notions and other dry goods
5137|制服及工作服|Men's, women's and children's uniforms and commercial clothing
5139|鞋类批发|Commercial footwear
5169|化工产品|Chemicals and allied products
5172|石油及石油产品|Petroleum and petroleum products
5192|书报杂志批发|Books, periodicals and newspapers
5193|花卉及苗木批发|Florists' supplies, nursery stock and flowers
5198|油漆及涂料|Paints, varnishes and supplies
5199|其他非耐用品批发|Non-durable goods
5200|家居建材|Home supply warehouse stores
5211|木材及建材商店|Lumber and building materials stores
5231|玻璃、油漆及墙纸店|Glass, paint and wallpaper stores
5251|五金店|Hardware stores
5261|园艺用品店|Nurseries and lawn and garden supply stores
5262|网上市场|Marketplaces
5271|移动房屋经销|Mobile home dealers
5300|会员制仓储店|Wholesale clubs
5309|免税店|Duty-free stores
5310|折扣店|Discount stores
5311|百货商店|Department stores
5331|杂货店|Variety stores
5399|综合商品店|Miscellaneous general merchandise
5411|超市|Grocery stores and supermarkets
5422|肉类及海鲜|Freezer and locker meat provisioners
5441|糖果及干果店|Candy, nut and confectionery stores
5451|乳制品店|Dairy products stores
5462|面包房|Bakeries
5499|便利店及食品专卖|Convenience stores and speciality food markets
5511|汽车销售（新车及二手车）|Car and truck dealers, new and used
5521|二手车销售|Car and truck dealers, used only
5531|汽车用品店|Auto and home supply stores
5532|轮胎店|Automotive tyre stores
5533|汽车配件店|Automotive parts and accessories stores
5541|加油站|Service stations
5542|自助加油机|Automated fuel dispensers
5551|船舶销售|Boat dealers
5552|电动汽车充电|Electric vehicle charging
5561|房车及拖车销售|Camper, recreational and utility trailer dealers
5571|摩托车销售|Motorcycle shops and dealers
5592|房车销售|Motor home dealers
5598|雪地车销售|Snowmobile dealers
5599|其他汽车及交通工具销售|Miscellaneous automotive, aircraft and farm equipment dealers
5611|男装及配饰|Men's and boys' clothing and accessories stores
5621|女装成衣|Women's ready-to-wear stores
5631|女士配饰店|Women's accessory and speciality shops
5641|童装及婴儿用品|Children's and infants' wear stores
5651|服装店（家庭）|Family clothing stores
5655|运动服饰|Sports and riding apparel stores
5661|鞋店|Shoe stores
5681|皮草店|Furriers and fur shops
5691|男女服装店|Men's and women's clothing stores
5697|裁缝及改衣|Tailors, seamstresses, mending and alterations
5698|假发店|Wig and toupee stores
5699|其他服饰店|Miscellaneous apparel and accessory shops
5712|家具及家居用品|Furniture, home furnishings and equipment stores
5713|地板店|Floor covering stores
5714|窗帘及布艺|Drapery, window covering and upholstery stores
5718|壁炉用品|Fireplace, fireplace screens and accessories stores
5719|家居饰品店|Miscellaneous home furnishing speciality stores
5722|家用电器|Household appliance stores
5732|电子产品|Electronics stores
5733|乐器店|Music stores: musical instruments, pianos and sheet music
5734|电脑软件店|Computer software stores
5735|音像制品店|Record stores
5811|宴会承办|Caterers
5812|餐厅|Eating places and restaurants
5813|酒吧及夜店|Drinking places: bars, taverns, nightclubs
5814|快餐店|Fast food restaurants
5815|数字商品：书籍、电影、音乐|Digital goods: media, books, movies, music
5816|数字商品：游戏|Digital goods: games
5817|数字商品：应用软件|Digital goods: applications
5818|数字商品：综合|Digital goods: large digital goods merchant
5912|药店|Drug stores and pharmacies
5921|酒类专卖|Package stores: beer, wine and liquor
5931|二手商品店|Used merchandise and second-hand stores
5932|古董店|Antique shops
5933|典当行|Pawn shops
5935|废品回收|Wrecking and salvage yards
5937|古董复制品|Antique reproductions
5940|自行车店|Bicycle shops
5941|体育用品店|Sporting goods stores
5942|书店|Book stores
5943|文具店|Stationery, office and school supply stores
5944|珠宝钟表店|Jewellery, watch, clock and silverware stores
5945|玩具及游戏店|Hobby, toy and game shops
5946|摄影器材店|Camera and photographic supply stores
5947|礼品及纪念品店|Gift, card, novelty and souvenir shops
5948|箱包皮具店|Luggage and leather goods stores
5949|布料及缝纫用品|Sewing, needlework, fabric and piece goods stores
5950|玻璃及水晶器皿|Glassware and crystal stores
5960|直销：保险|Direct marketing: insurance services
5962|直销：旅游服务|Direct marketing: travel-related arrangement services
5963|上门直销|Door-to-door sales
5964|直销：目录商店|Direct marketing: catalogue merchant
5965|直销：目录及零售|Direct marketing: combination catalogue and retail merchant
5966|直销：电话外呼|Direct marketing: outbound telemarketing merchant
5967|直销：电话呼入|Direct marketing: inbound teleservices merchant
5968|直销：订阅|Direct marketing: continuity and subscription merchant
5969|其他直销|Direct marketing: other direct marketers
5970|美术及手工用品|Artist's supply and craft shops
5971|画廊|Art dealers and galleries
5972|邮票及钱币|Stamp and coin stores
5973|宗教用品店|Religious goods stores
5975|助听器|Hearing aids: sales, service and supplies
5976|康复及矫形用品|Orthopaedic goods and prosthetic devices
5977|化妆品店|Cosmetic stores
5978|打字机店|Typewriter stores
5983|燃料经销|Fuel dealers: fuel oil, wood, coal, liquefied petroleum
5992|花店|Florists
5993|烟草店|Cigar stores and stands
5994|报刊亭|News dealers and newsstands
5995|宠物用品店|Pet shops, pet food and supplies
5996|游泳池用品|Swimming pools: sales and service
5997|电动剃须刀|Electric razor stores: sales and service
5998|帐篷及遮阳篷|Tent and awning shops
5999|其他专卖零售|Miscellaneous and speciality retail stores
6010|金融机构：柜台取现|Financial institutions: manual cash disbursements
6011|金融机构：自动取款|Financial institutions: automated cash disbursements
6012|金融机构：商品及服务|Financial institutions: merchandise and services
6051|非金融机构：外币兑换及准现金|Non-financial institutions: foreign currency and quasi-cash
6211|证券经纪|Security brokers and dealers
6300|保险|Insurance sales, underwriting and premiums
6513|房地产中介及租赁|Real estate agents and managers: rentals
6540|储值卡充值|Non-financial institutions: stored value card purchase and load
7011|酒店及度假村|Hotels, motels and resorts
7012|分时度假|Timeshares
7032|运动及娱乐营地|Sporting and recreational camps
7033|房车营地|Trailer parks and campgrounds
7210|洗衣服务|Laundry, cleaning and garment services
7211|洗衣店|Laundries: family and commercial
7216|干洗店|Dry cleaners
7217|地毯清洗|Carpet and upholstery cleaning
7221|照相馆|Photographic studios
7230|美容美发|Beauty and barber shops
7251|修鞋及擦鞋|Shoe repair shops, shoe shine parlours and hat cleaning
7261|殡葬服务|Funeral services and crematories
7273|婚恋交友服务|Dating and escort services
7276|报税服务|Tax preparation services
7277|咨询服务（个人）|Counselling services: debt, marriage and personal
7278|购物代理服务|Buying and shopping services and clubs
7296|服装租赁|Clothing rental: costumes, uniforms and formal wear
7297|按摩店|Massage parlours
7298|美容及水疗|Health and beauty spas
7299|其他个人服务|Miscellaneous personal services
7311|广告服务|Advertising services
7321|征信服务|Consumer credit reporting agencies
7333|商业摄影及设计|Commercial photography, art and graphics
7338|复印服务|Quick copy, reproduction and blueprinting services
7339|秘书及速记服务|Stenographic and secretarial support services
7342|灭虫及消毒|Exterminating and disinfecting services
7349|清洁及保洁服务|Cleaning, maintenance and janitorial services
7361|职业介绍及人力服务|Employment agencies and temporary help services
7372|软件及信息技术服务|Computer programming, data processing and systems design
7375|信息检索服务|Information retrieval services
7379|电脑维修|Computer maintenance and repair services
7392|管理及咨询服务|Management, consulting and public relations services
7393|安保服务|Detective agencies, protective agencies and security services
7394|设备租赁|Equipment, tool, furniture and appliance rental and leasing
7395|照片冲印|Photofinishing laboratories and photo developing
7399|其他商业服务|Business services
7512|汽车租赁|Automobile rental agency
7513|货车及拖车租赁|Truck and utility trailer rentals
7519|房车租赁|Motor home and recreational vehicle rentals
7523|停车场|Parking lots and garages
7531|汽车车身维修|Automotive body repair shops
7534|轮胎翻新及维修|Tyre retreading and repair shops
7535|汽车喷漆|Automotive paint shops
7538|汽车维修保养|Automotive service shops
7542|洗车|Car washes
7549|道路救援|Towing services
7622|家电维修|Electronics repair shops
7623|空调及制冷维修|Air conditioning and refrigeration repair shops
7629|电器及小家电维修|Electrical and small appliance repair shops
7631|钟表及珠宝维修|Watch, clock and jewellery repair
7641|家具维修|Furniture reupholstery, repair and refinishing
7692|焊接维修|Welding repair
7699|其他维修服务|Miscellaneous repair shops and related services
7800|政府彩票|Government-owned lotteries
7801|政府许可的网络博彩|Government-licensed online casinos
7802|政府许可的赛马及赛狗|Government-licensed horse and dog racing
7829|影视制作及发行|Motion picture and video production and distribution
7832|电影院|Motion picture theatres
7841|影像租赁|Video tape rental stores
7911|舞厅及舞蹈学校|Dance halls, studios and schools
7922|剧院及演出票务|Theatrical producers and ticket agencies
7929|乐队及演艺团体|Bands, orchestras and miscellaneous entertainers
7932|台球厅|Billiard and pool establishments
7933|保龄球馆|Bowling alleys
7941|体育场馆及职业体育|Commercial sports, professional sports clubs and promoters
7991|旅游景点及展览|Tourist attractions and exhibits
7992|高尔夫球场|Public golf courses
7993|电子游戏用品|Video amusement game supplies
7994|电子游戏厅|Video game arcades and establishments
7995|博彩|Betting, including lottery tickets and casino gaming chips
7996|游乐园及马戏团|Amusement parks, circuses, carnivals and fortune tellers
7997|健身房及会员俱乐部|Membership clubs: sports, recreation, athletic; country clubs
7998|水族馆及海洋馆|Aquariums, seaquariums and dolphinariums
7999|其他休闲娱乐服务|Recreation services
8011|医生诊所|Doctors and physicians
8021|牙科诊所|Dentists and orthodontists
8031|整骨医生|Osteopaths
8041|脊椎按摩师|Chiropractors
8042|验光师及眼科医生|Optometrists and ophthalmologists
8043|眼镜店|Opticians, optical goods and eyeglasses
8049|足科医生|Podiatrists and chiropodists
8050|护理及照护机构|Nursing and personal care facilities
8062|医院|Hospitals
8071|医学及牙科检验|Medical and dental laboratories
8099|其他医疗服务|Medical services and health practitioners
8111|律师及法律服务|Legal services and attorneys
8211|中小学|Elementary and secondary schools
8220|大学及学院|Colleges, universities, professional schools and junior colleges
8241|函授学校|Correspondence schools
8244|商务及文秘学校|Business and secretarial schools
8249|职业技能培训|Vocational and trade schools
8299|其他教育培训|Schools and educational services
8351|托儿服务|Child care services
8398|慈善及社会服务组织|Charitable and social service organisations
8641|公民、社会及联谊组织|Civic, social and fraternal associations
8651|政治组织|Political organisations
8661|宗教组织|Religious organisations
8675|汽车协会|Automobile associations
8699|其他会员组织|Membership organisations
8734|检测实验室|Testing laboratories (non-medical)
8911|建筑及工程设计|Architectural, engineering and surveying services
8931|会计及审计服务|Accounting, auditing and bookkeeping services
8999|其他专业服务|Professional services
9211|法院费用|Court costs, including alimony and child support
9222|罚款|Fines
9223|保释金|Bail and bond payments
9311|税款|Tax payments
9399|其他政府服务|Government services
9402|邮政服务|Postal services: government only
9405|政府内部采购|Intra-government purchases: government only
9950|企业内部采购|Intra-company purchases
"""


def _parse(table: str) -> dict[str, tuple[str, str]]:
    rows: dict[str, tuple[str, str]] = {}
    for line in table.strip().splitlines():
        code, zh, en = line.split("|")
        rows[code] = (zh, en)
    return rows


NAMES: dict[str, tuple[str, str]] = _parse(_TABLE)
UNKNOWN_GROUP = Group(-1, -1, "未知类别", "Unknown category")


def valid(code: str) -> bool:
    """Whether ``code`` has the shape of an MCC: four ASCII digits."""
    return len(code) == 4 and code.isascii() and code.isdigit()


def group_of(code: str) -> Group:
    """The ISO 18245 group of ``code`` (:data:`UNKNOWN_GROUP` if it is not four digits)."""
    if not valid(code):
        return UNKNOWN_GROUP
    number = int(code)
    for group in GROUPS:
        if group.first <= number <= group.last:
            return group
    raise AssertionError("unreachable: the groups cover 0000-9999")


def category_of(code: str) -> str:
    """The spending category key of ``code`` (``other`` if none applies)."""
    if not valid(code):
        return "other"
    number = int(code)
    for first, last, key in CATEGORY_RANGES:
        if first <= number <= last:
            return key
    return "other"


@cache
def describe(code: str) -> Mcc:
    """``code`` described: its own name when the table has it, else its group's name."""
    group = group_of(code)
    zh, en = NAMES.get(code, (group.name_zh, group.name_en))
    return Mcc(code, zh, en, group, category_of(code))


def label(code: str, lang: str) -> str:
    """How pages show a code: ``餐厅（5812）`` / ``Eating places and restaurants (5812)``."""
    info = describe(code)
    if lang.startswith("zh"):
        return f"{info.name_zh}（{code}）"
    return f"{info.name_en} ({code})"


def choices(lang: str) -> list[tuple[str, str, str]]:
    """Every named code for a picker, as (code, name, group name) in code order."""
    return [
        (code, describe(code).name(lang), _group_name(describe(code).group, lang))
        for code in sorted(NAMES)
    ]


def _group_name(group: Group, lang: str) -> str:
    return group.name_zh if lang.startswith("zh") else group.name_en
